"""A weights folder is untrusted input: every setting bounded and typed, every file inside and checksummed.

Each case copies a real tiny weights folder (DSS-SQA from `make_tiny`, MST-CLIPIQA from its
tiny maker), breaks it the way a damaged, edited or hostile folder would, and expects one
typed error naming the file, the field, the value and what is expected, raised while loading,
before any backbone is built or any image scored.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES

from semantic_iqa import DSSSQA
from semantic_iqa.cli import main
from semantic_iqa.config_fields import MAX_IMAGE_SIZE
from semantic_iqa.errors import WeightsConfigError, WeightsFormatError, WeightsIntegrityError
from semantic_iqa.metrics.mst_clipiqa import MSTCLIPIQA, build_random_mst_clipiqa
from semantic_iqa.weights import sha256_file


@pytest.fixture
def copy(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "weights"))


@pytest.fixture(scope="module")
def mst_dir(tmp_path_factory) -> Path:
    return build_random_mst_clipiqa("B", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "B")


@pytest.fixture
def mst_copy(mst_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(mst_dir, tmp_path / "mst"))


def edit(folder: Path, field: str, value) -> None:
    """Set `field` (dotted for nested settings) in `folder/config.json`; `...` deletes it."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    *parents, last = field.split(".")
    target = config
    for name in parents:
        target = target[name]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    path.write_text(json.dumps(config))  # NaN and Infinity are written as Python's json writes them


def config_error(load, folder: Path, field: str) -> WeightsConfigError:
    with pytest.raises(WeightsConfigError) as caught:
        load(folder, device="cpu")
    error = caught.value
    assert error.field == field
    message = str(error)
    assert str(folder / "config.json") in message and field in message and "expected" in message
    assert "\n" not in message
    return error


# -- sizes and types of the DSS-SQA settings --------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("preprocess.image_size", 100000),  # one score call took 22.7 GB and met the OOM killer
        ("preprocess.image_size", -5),
        ("preprocess.image_size", 0),
        ("preprocess.image_size", True),  # a bool is not an int here
        ("preprocess.image_size", 224.0),
        ("preprocess.image_size", "224"),
        ("preprocess.mean", [0.5, 0.5]),
        ("preprocess.mean", [0.5, "0.5", 0.5]),
        ("preprocess.mean", 0.5),
        ("preprocess.std", [0, 0, 0]),  # scored nan: divides by zero
        ("preprocess.std", [float("nan"), 0.26, 0.27]),
        ("preprocess.std", [float("inf"), 0.26, 0.27]),
        ("num_folds", "5"),
        ("num_folds", 0),
        ("num_folds", 10**6),
        ("num_folds", False),
        ("structure_dim", "768"),
        ("semantic_dim", -1),
        ("head.hidden_dims", [256]),
        ("head.hidden_dims", [256, 10**9]),
        ("head.dropout", [1.5, 0.2]),
        ("head.num_classes", 1),
        ("head.norm_eps", 0),
        ("gate.low", "0.4"),
        ("gate.high", 2.0),
        ("gate.hard_logit", float("inf")),
        ("gate.mode", 3),
        ("provenance", "trained somewhere"),
        ("structure.name", 5),
        ("semantic.repo_id", "../../elsewhere"),
    ],
)
def test_each_wrong_setting_is_one_typed_error(copy, field, value):
    edit(copy, field, value)
    error = config_error(DSSSQA.from_pretrained, copy, field)
    assert isinstance(error, WeightsFormatError) and isinstance(error, ValueError)
    assert json.dumps(error.value) == json.dumps(value)


def test_the_image_size_bound_is_named_and_a_valid_size_still_loads(copy):
    edit(copy, "preprocess.image_size", 100000)
    error = config_error(DSSSQA.from_pretrained, copy, "preprocess.image_size")
    assert "100000" in str(error) and str(MAX_IMAGE_SIZE) in str(error) and "MAX_IMAGE_SIZE" in str(error)
    edit(copy, "preprocess.image_size", 256)  # another multiple of the structure backbone's 16 px patches
    assert DSSSQA.from_pretrained(copy, device="cpu").config.preprocess.image_size == 256


def test_an_image_size_the_structure_backbone_cannot_take_is_refused_at_load(copy):
    # DINOv3 cuts 16 px patches: 200 loaded, then every score call died in timm with an AssertionError.
    edit(copy, "preprocess.image_size", 200)
    error = config_error(DSSSQA.from_pretrained, copy, "preprocess.image_size")
    assert "multiple of 16" in str(error)


def test_heads_too_large_in_all_are_refused_although_each_size_is_in_range(copy):
    edit(copy, "num_folds", 64)
    edit(copy, "head.hidden_dims", [4096, 4096])
    with pytest.raises(WeightsConfigError, match="MAX_HEAD_PARAMETERS"):
        DSSSQA.from_pretrained(copy, device="cpu")


def test_settings_are_checked_before_any_backbone_file_is_touched(copy):
    (copy / "semantic" / "model.safetensors").unlink()  # would be WeightsNotFoundError if it got that far
    edit(copy, "preprocess.image_size", -5)
    config_error(DSSSQA.from_pretrained, copy, "preprocess.image_size")


def test_a_hub_backbone_must_be_pinned_to_a_revision(copy):
    edit(copy, "semantic", {"library": "transformers", "name": "clip", "repo_id": "openai/clip-vit-base-patch32"})
    error = config_error(DSSSQA.from_pretrained, copy, "semantic.revision")
    assert "commit" in str(error)


def test_the_error_pickles_and_is_one_line_on_the_command_line(copy, capsys):
    edit(copy, "num_folds", "5")
    with pytest.raises(WeightsConfigError) as caught:
        DSSSQA.from_pretrained(copy, device="cpu")
    again = pickle.loads(pickle.dumps(caught.value))  # errors travel back from worker processes
    assert str(again) == str(caught.value)
    ref = str(EXAMPLES / "ref.png")
    assert main(["score", ref, ref, "--weights", str(copy), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_folds" in err[0] and '"5"' in err[0] and "an integer" in err[0]


# -- files outside the folder, or outside the checksum list ------------------------------------------


def test_a_stored_backbone_path_pointing_at_another_folder_is_refused(copy, tiny_dir, tmp_path):
    # The sha256 check covered this folder's own semantic/ while the backbone came from the other one.
    other = Path(shutil.copytree(tiny_dir, tmp_path / "other"))
    edit(copy, "semantic.path", "../other/semantic")
    config_error(DSSSQA.from_pretrained, copy, "semantic.path")
    edit(copy, "semantic.path", str(other / "semantic"))  # absolute
    config_error(DSSSQA.from_pretrained, copy, "semantic.path")


def test_a_head_file_outside_the_folder_is_refused(copy, tmp_path):
    outside = tmp_path / "x.safetensors"
    shutil.copy(copy / "heads" / "fold_0.safetensors", outside)
    config = json.loads((copy / "config.json").read_text())
    config["head_files"][0] = {"file": "../x.safetensors", "sha256": sha256_file(outside)}
    (copy / "config.json").write_text(json.dumps(config))
    config_error(DSSSQA.from_pretrained, copy, "head_files[0].file")


def test_links_that_lead_out_of_the_folder_are_refused(copy, tiny_dir, tmp_path):
    other = Path(shutil.copytree(tiny_dir, tmp_path / "other"))
    shutil.rmtree(copy / "semantic")
    os.symlink(other / "semantic", copy / "semantic")  # same bytes, so the sha256 check alone passes
    with pytest.raises(WeightsIntegrityError, match="outside the weights folder"):
        DSSSQA.from_pretrained(copy, device="cpu")

    shutil.rmtree(copy)
    shutil.copytree(tiny_dir, copy)
    (copy / "heads" / "fold_2.safetensors").unlink()
    os.symlink(other / "heads" / "fold_2.safetensors", copy / "heads" / "fold_2.safetensors")
    with pytest.raises(WeightsIntegrityError, match="fold_2.safetensors.*outside the weights folder"):
        DSSSQA.from_pretrained(copy, device="cpu")


def test_a_backbone_file_missing_from_the_checksum_list_is_refused(copy):
    edit(copy, "backbone_files", [])
    weights = copy / "structure" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")  # tampered: it loaded and scored
    with pytest.raises(WeightsIntegrityError, match=r"structure/(config\.json|model\.safetensors).*not listed"):
        DSSSQA.from_pretrained(copy, device="cpu")


def test_an_extra_unlisted_file_in_a_stored_backbone_is_refused(copy):
    (copy / "semantic" / "preprocessor_config.json").write_text("{}")
    with pytest.raises(WeightsIntegrityError, match="semantic/preprocessor_config.json.*not listed"):
        DSSSQA.from_pretrained(copy, device="cpu")


@pytest.mark.parametrize(
    "entry", [{"file": "heads/fold_0.safetensors", "sha256": "abc"}, {"file": "", "sha256": "0" * 64}]
)
def test_a_malformed_file_entry_is_refused(copy, entry):
    edit(copy, "head_files", [entry])
    with pytest.raises(WeightsConfigError, match=r"head_files\[0\]"):
        DSSSQA.from_pretrained(copy, device="cpu")


def test_a_hugging_face_cache_snapshot_whose_files_link_to_blobs_still_loads(tiny_dir, tmp_path):
    """The Hub cache stores files in blobs/ and links them from snapshots/<commit>/: that is not an escape."""
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = Path(shutil.copytree(tiny_dir, repo / "snapshots" / ("0" * 40)))
    (repo / "blobs").mkdir()
    for path in [p for p in snapshot.rglob("*") if p.is_file()]:
        blob = repo / "blobs" / sha256_file(path)
        path.replace(blob)
        path.symlink_to(os.path.relpath(blob, path.parent))
    model = DSSSQA.from_pretrained(snapshot, device="cpu")
    assert model.config.num_folds == 5


# -- MST-CLIPIQA: the same checks through the same routine -------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("image_size", 100000),
        ("image_size", -5),
        ("std", [0, 0, 0]),
        ("mean", [0.5, 0.5]),
        ("embed_dim", True),
        ("num_heads", "8"),
        ("hidden_dim", 0),
        ("max_prompt_tokens", 500),  # CLIP's text tower has 77 positions
        ("quality_words", "bad"),
        ("quality_words", ["bad"]),
        ("quality_template", "{0} and {1}"),  # format() raised IndexError while building the model
        ("quality_template", 7),
        ("variant", ["A"]),
        ("fine.path", "/tmp"),
    ],
)
def test_each_wrong_mst_clipiqa_setting_is_one_typed_error(mst_copy, field, value):
    edit(mst_copy, field, value)
    config_error(MSTCLIPIQA.from_pretrained, mst_copy, field)


def test_an_mst_clipiqa_image_size_the_towers_cannot_take_is_refused_at_load(mst_copy):
    edit(mst_copy, "image_size", 448)  # the towers are 224 px: every score call failed inside transformers
    error = config_error(MSTCLIPIQA.from_pretrained, mst_copy, "image_size")
    assert "224" in str(error)


def test_a_valid_mst_clipiqa_folder_still_loads(mst_dir):
    assert MSTCLIPIQA.from_pretrained(mst_dir, device="cpu").variant == "B"
