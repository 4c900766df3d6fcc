"""The weights folder: round trip, contents, and a typed error for each way it can be broken."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import hand_made_hub_cache, offline_env, run_python
from safetensors.torch import load_file, save_file

from semantic_iqa import DSSSQA
from semantic_iqa.errors import WeightsError, WeightsFormatError, WeightsIntegrityError, WeightsNotFoundError
from semantic_iqa.hub import resolve_weights
from semantic_iqa.metrics.dss_sqa.heads import FOLD_TENSORS


@pytest.fixture
def weights_copy(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "copy"))


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_round_trip_gives_identical_scores(tiny_model, tmp_path, photo):
    saved = tiny_model.save_pretrained(tmp_path / "saved")
    reloaded = DSSSQA.from_pretrained(saved, device="cpu")
    dist = photo.rotate(30)
    assert torch.equal(reloaded.predict(photo, dist).score, tiny_model.predict(photo, dist).score)


def test_save_refuses_a_folder_holding_something_else_but_overwrites_weights(tiny_model, tmp_path):
    (tmp_path / "config.json").write_text('{"my": "project settings"}')
    with pytest.raises(WeightsError, match="not empty and not a weights folder"):
        tiny_model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"my": "project settings"}
    tiny_model.save_pretrained(tmp_path / "w")
    tiny_model.save_pretrained(tmp_path / "w")  # again, over the same weights folder


def test_model_card_records_provenance_figures_licences_and_citation(tiny_model, tmp_path):
    model = DSSSQA(
        replace(
            tiny_model.config,
            provenance={
                "training_data": "LoViF train, 510 pairs",
                "cross_validation": {"SROCC": 0.857, "Final": 0.8611},
                "seed": 3407,
            },
        ),
        tiny_model.structure,
        tiny_model.semantic,
        tiny_model.heads,
    )
    card = (model.save_pretrained(tmp_path / "w") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: semantic-iqa")
    assert "LoViF train, 510 pairs" in card and "| SROCC | 0.857 |" in card and '"seed": 3407' in card
    assert "DINOv3 License" in card and "## Citation" in card


def test_folder_contents(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    assert (config["format"], config["format_version"], config["metric"]) == ("semantic-iqa", 2, "dss_sqa")
    assert config["structure"]["path"] == "structure" and config["semantic"]["path"] == "semantic"
    assert config["preprocess"]["image_size"] == 224 and config["gate"]["mode"] == "hard"
    assert len(config["head_files"]) == config["num_folds"] == 5
    assert [e["file"] for e in config["head_files"]] == [f"heads/fold_{k}.safetensors" for k in range(5)]
    for entry in config["head_files"]:
        tensors = load_file(tiny_dir / entry["file"])
        assert set(tensors) == set(FOLD_TENSORS)  # head weights and BatchNorm statistics only
        assert len(entry["sha256"]) == 64
    assert (tiny_dir / "structure" / "model.safetensors").is_file()
    assert (tiny_dir / "semantic" / "model.safetensors").is_file()


def test_missing_folder_and_missing_config(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="weights folder not found"):
        DSSSQA.from_pretrained(tmp_path / "nowhere", device="cpu")
    with pytest.raises(WeightsNotFoundError, match="no config.json"):
        DSSSQA.from_pretrained(tmp_path, device="cpu")


def test_missing_fold_file(weights_copy):
    (weights_copy / "heads" / "fold_3.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="fold_3.safetensors"):
        DSSSQA.from_pretrained(weights_copy, device="cpu")


def test_missing_backbone_file(weights_copy):
    (weights_copy / "semantic" / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="lacks the file semantic/model.safetensors"):
        DSSSQA.from_pretrained(weights_copy, device="cpu")


def test_tampered_fold_file_names_both_hashes(weights_copy):
    path = weights_copy / "heads" / "fold_1.safetensors"
    tensors = load_file(path)
    tensors["linear3.bias"] += 1
    save_file(tensors, path)
    with pytest.raises(
        WeightsIntegrityError,
        match=r"fold_1\.safetensors: sha256 is [0-9a-f]{64} but config\.json "
        r"records [0-9a-f]{64}.*again",
    ):
        DSSSQA.from_pretrained(weights_copy, device="cpu")


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format_version": 3}, "format_version 3"),
        ({"format": "something-else"}, "not a semantic-iqa weights config"),
        ({"metric": "mst_clipiqa"}, "holds 'mst_clipiqa' weights, not 'dss_sqa'"),
        ({"mystery": 1}, "unknown DSSSQAConfig entries: mystery"),
        ({"head_files": []}, "0 head files for num_folds 5"),
        ({"gate": {"mode": "sometimes"}}, "unknown gate mode"),
        ({"structure": {"library": "timm", "name": "x"}}, "exactly one of 'repo_id' or 'path'"),
        ({"structure": {"library": "timm"}}, "missing 1 required positional argument: 'name'"),
        ({"semantic": {"library": "onnx", "name": "x", "path": "semantic"}}, "loads transformers models"),
    ],
)
def test_bad_config(weights_copy, changes, message):
    edit_config(weights_copy, **changes)
    with pytest.raises(WeightsFormatError) as caught:
        DSSSQA.from_pretrained(weights_copy, device="cpu")
    assert message in str(caught.value)


def test_a_format_1_folder_still_loads_and_scores_the_same(weights_copy, tiny_model, photo):
    """Folders written by semantic-iqa 0.1 (format `semantic-iqa/dss-sqa` version 1, `fold_files`)."""
    config = json.loads((weights_copy / "config.json").read_text())
    legacy = {
        "format": "semantic-iqa/dss-sqa",
        "format_version": 1,
        **{k: v for k, v in config.items() if k not in ("format", "format_version", "metric", "head_files")},
        "fold_files": config["head_files"],
    }
    (weights_copy / "config.json").write_text(json.dumps(legacy))
    blurred = photo.resize((64, 64)).resize(photo.size)
    expected = tiny_model.predict(photo, blurred).score
    torch.testing.assert_close(
        DSSSQA.from_pretrained(weights_copy, device="cpu").predict(photo, blurred).score, expected
    )


def test_config_that_is_not_json(weights_copy):
    (weights_copy / "config.json").write_text("{not json")
    with pytest.raises(WeightsFormatError, match="not valid JSON"):
        DSSSQA.from_pretrained(weights_copy, device="cpu")


def test_something_that_is_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not a Hub repo id"):
        resolve_weights("a/b/c")


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_weights_name_is_refused_not_taken_for_the_current_folder(empty, tmp_path, monkeypatch):
    from semantic_iqa.errors import InvalidOptionError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidOptionError, match="is empty"):
        resolve_weights(empty)


def test_hub_repo_loads_offline_from_the_hugging_face_cache(tiny_dir, tmp_path, photo):
    cache = tmp_path / "hub"
    hand_made_hub_cache(cache, "someone/tiny-dss-sqa", tiny_dir)
    photo.save(tmp_path / "ref.png")
    photo.rotate(20).save(tmp_path / "dist.png")
    code = (
        "import semantic_iqa, sys; "
        f"print(semantic_iqa.score(r'{tmp_path / 'ref.png'}', r'{tmp_path / 'dist.png'}', "
        "weights='someone/tiny-dss-sqa', device='cpu'))"
    )
    result = run_python(code, offline_env(cache))
    assert result.returncode == 0, result.stderr
    expected = DSSSQA.from_pretrained(tiny_dir, device="cpu").predict(photo, photo.rotate(20)).score.item()
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected, abs=1e-6)

    missing = run_python(
        "import semantic_iqa; semantic_iqa.DSSSQA.from_pretrained('someone/absent')", offline_env(cache)
    )
    assert missing.returncode != 0
    assert "WeightsNotFoundError" in missing.stderr and "semantic-iqa download" in missing.stderr
