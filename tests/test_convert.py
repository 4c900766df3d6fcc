"""convert-siqav3: checkpoints written the way the authors' train script writes them convert exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from authors_checkpoint import AuthorsModel, AuthorsRun, SavedFold, authors_config
from pickle_payload import CreatesAFile
from PIL import Image, ImageFilter
from test_model import hand_pixels

from semantic_iqa import DSSSQA
from semantic_iqa.backbones import SemanticEncoder, StructureEncoder
from semantic_iqa.cli import main
from semantic_iqa.errors import ConversionError
from semantic_iqa.metrics.dss_sqa.checkpoint_config import MODEL_KEYS, Effect
from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG
from semantic_iqa.metrics.dss_sqa.convert import convert_siqav3

# Pairs scored from image files. With the tiny CLIP, "rotated" and "resized" have cosines
# below 0.4 (the gate vetoes them), "crop" lies in the soft band [0.4, 0.5), the others above.
PAIR_NAMES = ("blurred", "rotated", "resized", "identical", "crop")
GATED, SOFT_BAND, UNGATED = [1, 2], [4], [0, 3, 4]


@pytest.fixture(scope="module")
def authors_run(tiny_dir: Path) -> AuthorsRun:
    structure = StructureEncoder.from_folder(tiny_dir / "structure").model
    clip = SemanticEncoder.from_folder(tiny_dir / "semantic").model
    return AuthorsRun(structure, clip)


@pytest.fixture(scope="module")
def reference_folds(authors_run: AuthorsRun, tmp_path_factory) -> list[SavedFold]:
    """The reference run: five folds, each with best.pth and last.pth."""
    return authors_run.train_and_save(tmp_path_factory.mktemp("authors"), authors_config())


@pytest.fixture(scope="module")
def pairs(photo: Image.Image, tmp_path_factory) -> tuple[list[Path], list[Path], list, list]:
    """(reference files, distorted files, reference images, distorted images)."""
    folder = tmp_path_factory.mktemp("pairs")
    refs = [photo, photo, photo.resize((90, 200)), photo, photo]
    dists = [
        photo.filter(ImageFilter.GaussianBlur(3)),
        photo.rotate(180),
        photo.resize((50, 40)),
        photo,
        photo.crop((0, 0, 128, 128)),
    ]
    ref_files, dist_files = [], []
    for name, ref, dist in zip(PAIR_NAMES, refs, dists, strict=True):
        ref_files.append(folder / f"{name}_ref.png")
        dist_files.append(folder / f"{name}_dist.png")
        ref.save(ref_files[-1])
        dist.save(dist_files[-1])
    return ref_files, dist_files, refs, dists


def authors_scores(models: list[AuthorsModel], refs, dists, gate: str) -> torch.Tensor:
    """The authors' ensemble: mean of the folds' expected scores, from the hand-written forward."""
    with torch.no_grad():
        ref, dist = hand_pixels(refs), hand_pixels(dists)
        return torch.stack([model(ref, dist, gate=gate) for model in models]).mean(dim=0)


def converted_scores(out: Path, pairs) -> torch.Tensor:
    """Scores of the converted folder on the image files, with its own default gate."""
    return DSSSQA.from_pretrained(out, device="cpu").predict(pairs[0], pairs[1]).score


def saved_gate(out: Path) -> str:
    return json.loads((out / "config.json").read_text())["gate"]["mode"]


def test_the_table_is_the_reference_table():
    """The converter's table against the reference's table (typed independently, as YAML) and the package."""
    model_section = authors_config()["model"]
    assert set(MODEL_KEYS) == set(model_section)
    for key, row in MODEL_KEYS.items():
        if row.effect is not Effect.LOADER_ONLY:  # the reference does not record the loader options' values
            assert (row.reference, type(row.reference)) == (model_section[key], type(model_section[key])), key
    refused_if_different = {key for key, row in MODEL_KEYS.items() if row.refuses_other_values}
    assert refused_if_different == {
        "structure_backbone",
        "ablation_mode",
        "clip_name",
        "num_classes",
        "clip_mult_enabled",
        "clip_mult_replace_raw",
        "clip_mult_l2_norm",
        "bottleneck_dim",
        "semantic_gate_threshold",
        "semantic_gate_high_threshold",
        "gate_logit_strength",
        "soft_gate_logit_strength",
        "freeze_backbones",
    }
    # What the converted model does must be what the table's values say.
    gate, head = REFERENCE_CONFIG.gate, REFERENCE_CONFIG.head
    table = {key: row.reference for key, row in MODEL_KEYS.items()}
    assert (gate.low, gate.high, gate.hard_logit, gate.soft_strength, gate.mode) == (
        table["semantic_gate_threshold"],
        table["semantic_gate_high_threshold"],
        table["gate_logit_strength"],
        table["soft_gate_logit_strength"],
        table["semantic_gate_mode"],
    )
    assert (head.num_classes, head.hidden_dims[0]) == (table["num_classes"], table["bottleneck_dim"])


def test_best_checkpoints_convert_safely_and_give_the_authors_scores(reference_folds, pairs, tiny_dir, tmp_path):
    out = convert_siqav3([f.best_path for f in reference_folds], tmp_path / "best", architecture_from=tiny_dir)
    expected = authors_scores([f.best_model for f in reference_folds], pairs[2], pairs[3], gate="hard")
    ours = DSSSQA.from_pretrained(out, device="cpu").predict(pairs[0], pairs[1])
    torch.testing.assert_close(ours.score, expected, rtol=1e-5, atol=1e-5)
    # The comparison means something: ungated pairs differ by far more than the tolerance,
    # and the gate fires where the hand-written forward says it does.
    assert expected[UNGATED].max() - expected[UNGATED].min() > 0.1
    assert ours.gated.tolist() == [i in GATED for i in range(len(PAIR_NAMES))]
    assert saved_gate(out) == "hard"

    config = json.loads((out / "config.json").read_text())
    assert config["structure"]["path"] == "structure" and config["semantic"]["path"] == "semantic"
    sources = config["provenance"]["source_checkpoints"]
    assert [s["file"] for s in sources] == ["best.pth"] * 5 and all(len(s["sha256"]) == 64 for s in sources)
    assert [s["epoch"] for s in sources] == [f.best_epoch for f in reference_folds]
    assert [s["metrics"] for s in sources] == [f.best_metrics for f in reference_folds]
    assert all("assumed_reference_values" not in s for s in sources)  # every key was in the config
    assert "source_loading" not in config["provenance"]  # read with the safe loader
    assert (out / "README.md").read_text().count("LoViF 2026 SeIQA train split") == 1


def test_the_checkpoints_are_the_authors_format(reference_folds):
    """What the fixture writes is what the reference describes (so the tests above test that format)."""
    raw = torch.load(reference_folds[0].best_path, map_location="cpu", weights_only=True)
    assert set(raw) == {"epoch", "model", "optimizer", "scheduler", "metrics", "config"}
    assert set(raw["config"]) == {"seed", "data", "model", "train", "debug", "output"}
    assert isinstance(raw["epoch"], int) and all(type(v) is float for v in raw["metrics"].values())
    assert set(raw["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert raw["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-2)
    assert raw["scheduler"]["T_max"] == 5 and raw["scheduler"]["last_epoch"] == raw["epoch"] + 1
    assert {k.split(".")[0] for k in raw["model"]} == {
        "structure_backbone",
        "clip_backbone",
        "bottleneck",
        "head",
        "score_weights",
    }
    # transformers 4 key names, as the reference lists them (transformers 5 names them without
    # the `vision_model.` level), including the position-id buffer it used to save.
    clip_keys = [k for k in raw["model"] if k.startswith("clip_backbone.")]
    assert clip_keys and all(k.startswith("clip_backbone.vision_model.") for k in clip_keys)
    assert "clip_backbone.vision_model.embeddings.position_ids" in raw["model"]


def test_last_checkpoints_convert_too(reference_folds, pairs, tiny_dir, tmp_path):
    out = convert_siqav3([f.last_path for f in reference_folds], tmp_path / "last", architecture_from=tiny_dir)
    expected = authors_scores([f.last_model for f in reference_folds], pairs[2], pairs[3], gate="hard")
    torch.testing.assert_close(converted_scores(out, pairs), expected, rtol=1e-5, atol=1e-5)
    # best.pth and last.pth hold different heads for some fold, so this is not the test above again.
    last_epoch = authors_config()["train"]["epochs"] - 1
    assert any(f.best_epoch != last_epoch for f in reference_folds)
    assert [s["file"] for s in json.loads((out / "config.json").read_text())["provenance"]["source_checkpoints"]] == [
        "last.pth"
    ] * 5


@pytest.mark.parametrize(
    "key,yaml_value,shown_value,reference_value",
    [
        ("ablation_mode", "structure_only", "'structure_only'", "'full'"),
        ("ablation_mode", "clip_only", "'clip_only'", "'full'"),
        ("gate_logit_strength", "6.0", "6.0", "12.0"),
        ("soft_gate_logit_strength", "12.0", "12.0", "6.0"),
        ("semantic_gate_threshold", "0.3", "0.3", "0.4"),
        ("semantic_gate_high_threshold", "0.6", "0.6", "0.5"),
        ("structure_backbone", "vit_small_patch16_dinov3", "'vit_small_patch16_dinov3'", "'vit_base_patch16_dinov3'"),
        ("clip_name", "clip_vit_b16", "'clip_vit_b16'", "'clip_vit_l14_336'"),
        ("num_classes", "5", "5", "6"),
        ("bottleneck_dim", "512", "512", "256"),
        ("clip_mult_replace_raw", "false", "False", "True"),
        ("clip_mult_enabled", "false", "False", "True"),
        ("clip_mult_l2_norm", "false", "False", "True"),
        ("freeze_backbones", "false", "False", "True"),
        ("gate_logit_strength", "'12.0'", "'12.0'", "12.0"),  # a string is not a number
    ],
)
def test_must_match_keys_that_differ_are_refused(
    authors_run, reference_folds, tiny_dir, tmp_path, key, yaml_value, shown_value, reference_value
):
    (other,) = authors_run.train_and_save(tmp_path, authors_config(**{key: yaml_value}), folds=[2])
    paths = [reference_folds[0].best_path, reference_folds[1].best_path, other.best_path]
    with pytest.raises(ConversionError) as refused:
        convert_siqav3(paths, tmp_path / "out", architecture_from=tiny_dir)
    message = str(refused.value)
    assert str(other.best_path) in message
    assert f"config['model']['{key}'] is {shown_value} but the reference value is {reference_value}" in message
    assert not (tmp_path / "out").exists()


def test_numbers_are_compared_as_numbers(authors_run, tiny_dir, tmp_path):
    """YAML `12` is an int and `4.0e-1` a float: both equal the reference numbers."""
    config = authors_config(gate_logit_strength="12", soft_gate_logit_strength="6", semantic_gate_threshold="4.0e-1")
    assert type(config["model"]["gate_logit_strength"]) is int
    folds = authors_run.train_and_save(tmp_path, config, folds=[0])
    out = convert_siqav3([folds[0].best_path], tmp_path / "out", architecture_from=tiny_dir)
    assert saved_gate(out) == "hard"


@pytest.mark.parametrize(
    "enabled,mode,converted",
    [
        ("false", "hard", "off"),
        ("false", "soft", "off"),
        ("true", "soft", "soft"),
        ("true", "'off'", "off"),
        ("true", "off", "off"),  # YAML 1.1 reads an unquoted `off` as false
    ],
)
def test_the_gate_settings_give_the_default_gate(authors_run, pairs, tiny_dir, tmp_path, enabled, mode, converted):
    config = authors_config(semantic_gate_enabled=enabled, semantic_gate_mode=mode)
    folds = authors_run.train_and_save(tmp_path, config, folds=range(2))
    out = convert_siqav3([f.best_path for f in folds], tmp_path / "out", architecture_from=tiny_dir)
    assert saved_gate(out) == converted
    models = [f.best_model for f in folds]
    expected = authors_scores(models, pairs[2], pairs[3], gate=converted)
    torch.testing.assert_close(converted_scores(out, pairs), expected, rtol=1e-5, atol=1e-5)
    # The pairs tell the gates apart, so keeping another gate would fail the comparison above.
    hard = authors_scores(models, pairs[2], pairs[3], gate="hard")
    changed = GATED if converted == "off" else SOFT_BAND
    assert ((expected - hard)[changed].abs() > 0.1).all()


def test_folds_that_disagree_on_the_gate_are_refused(authors_run, reference_folds, tiny_dir, tmp_path):
    (disabled,) = authors_run.train_and_save(tmp_path, authors_config(semantic_gate_enabled="false"), folds=[1])
    with pytest.raises(ConversionError, match="disagree on the gate") as refused:
        convert_siqav3([reference_folds[0].best_path, disabled.best_path], tmp_path / "out", architecture_from=tiny_dir)
    assert f"{reference_folds[0].best_path}: hard" in str(refused.value)
    assert f"{disabled.best_path}: off" in str(refused.value)


@pytest.mark.parametrize(
    "key,yaml_value,message",
    [
        ("semantic_gate_mode", "medium", "'semantic_gate_mode'] is 'medium', not one of hard, soft, off"),
        ("semantic_gate_enabled", "'no'", "'semantic_gate_enabled'] must be true or false, got 'no'"),
    ],
)
def test_invalid_gate_settings_are_refused(authors_run, tiny_dir, tmp_path, key, yaml_value, message):
    (fold,) = authors_run.train_and_save(tmp_path, authors_config(**{key: yaml_value}), folds=[0])
    with pytest.raises(ConversionError) as refused:
        convert_siqav3([fold.best_path], tmp_path / "out", architecture_from=tiny_dir)
    assert message in str(refused.value)


def test_training_loader_and_no_effect_keys_accept_any_value(authors_run, pairs, tiny_dir, tmp_path):
    config = authors_config(
        bottleneck_dropout="0.3",
        clip_interpolate_pos_encoding="false",
        swin_name="swin_tiny_patch4_window7_224",
        swin_local_path="null",
        clip_local_dir="/elsewhere/clip",
        clip_local_files_only="true",
    )
    folds = authors_run.train_and_save(tmp_path, config, folds=[3])
    out = convert_siqav3([folds[0].best_path], tmp_path / "out", architecture_from=tiny_dir)
    expected = authors_scores([folds[0].best_model], pairs[2], pairs[3], gate="hard")
    torch.testing.assert_close(converted_scores(out, pairs), expected, rtol=1e-5, atol=1e-5)


def test_missing_keys_take_the_reference_values(authors_run, pairs, tiny_dir, tmp_path):
    config = authors_config(
        semantic_gate_mode=None, semantic_gate_enabled=None, gate_logit_strength=None, swin_name=None
    )
    folds = authors_run.train_and_save(tmp_path, config, folds=[0])
    out = convert_siqav3([folds[0].best_path], tmp_path / "out", architecture_from=tiny_dir)
    assert saved_gate(out) == "hard"
    sources = json.loads((out / "config.json").read_text())["provenance"]["source_checkpoints"]
    assert sources[0]["assumed_reference_values"] == [
        "gate_logit_strength",
        "semantic_gate_enabled",
        "semantic_gate_mode",
    ]


@pytest.mark.parametrize(
    "key,yaml_value",
    [("clip_cache_dir", "/data/hf"), ("dinov3_local_path", "null"), ("swin_local_files_only", "true")],
)
def test_unknown_loader_options_are_accepted(authors_run, tiny_dir, tmp_path, key, yaml_value):
    (fold,) = authors_run.train_and_save(tmp_path, authors_config(**{key: yaml_value}), folds=[0])
    assert convert_siqav3([fold.best_path], tmp_path / "out", architecture_from=tiny_dir).is_dir()


@pytest.mark.parametrize(
    "key,yaml_value",
    [
        ("use_local_attention", "true"),  # "local" in the name is not enough
        ("drop_path", "0.1"),  # a loader-like name with a number: not a location
        ("drop_path_rate", "0.1"),
        ("logit_temperature", "2.0"),
        ("semantic_gate_temperature", "2.0"),
        ("fusion_dim", "5377"),
    ],
)
def test_unknown_keys_that_could_change_the_model_are_refused(authors_run, tiny_dir, tmp_path, key, yaml_value):
    (fold,) = authors_run.train_and_save(tmp_path, authors_config(**{key: yaml_value}), folds=[0])
    with pytest.raises(ConversionError) as refused:
        convert_siqav3([fold.best_path], tmp_path / "out", architecture_from=tiny_dir)
    message = str(refused.value)
    assert f"{fold.best_path}: unknown key config['model']['{key}'] = " in message
    assert "ends in _path, _dir, _files_only and its value is a string, a boolean or null" in message


def with_numpy_metrics(fold: SavedFold, target: Path) -> Path:
    """The same checkpoint, but with a numpy scalar in `metrics` (what `np.mean` would have left)."""
    checkpoint = torch.load(fold.best_path, map_location="cpu", weights_only=True)
    checkpoint["metrics"] = {**checkpoint["metrics"], "final": np.float64(0.8611)}
    torch.save(checkpoint, target)
    return target


def test_files_that_need_the_full_unpickler_are_refused_unless_trusted(reference_folds, pairs, tiny_dir, tmp_path):
    numpy_file = with_numpy_metrics(reference_folds[0], tmp_path / "numpy_metrics.pth")
    with pytest.raises(ConversionError) as refused:
        convert_siqav3([numpy_file], tmp_path / "out", architecture_from=tiny_dir)
    message = str(refused.value)
    assert str(numpy_file) in message and "numpy" in message and "--trust-pickle" in message
    assert "\n" not in message and "\x1b" not in message

    out = convert_siqav3([numpy_file], tmp_path / "trusted", architecture_from=tiny_dir, trust_pickle=True)
    provenance = json.loads((out / "config.json").read_text())["provenance"]
    assert provenance["source_checkpoints"][0]["metrics"]["final"] == pytest.approx(0.8611)
    assert provenance["source_loading"] == "full unpickling (--trust-pickle)"
    expected = authors_scores([reference_folds[0].best_model], pairs[2], pairs[3], gate="hard")
    torch.testing.assert_close(converted_scores(out, pairs), expected, rtol=1e-5, atol=1e-5)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(reference_folds, tiny_dir, tmp_path):
    checkpoint = torch.load(reference_folds[0].best_path, map_location="cpu", weights_only=True)
    marker = tmp_path / "the_pickle_ran_code"
    checkpoint["metrics"] = {"final": CreatesAFile(marker)}
    malicious = tmp_path / "malicious.pth"
    torch.save(checkpoint, malicious)
    with pytest.raises(ConversionError, match="--trust-pickle") as refused:
        convert_siqav3([malicious], tmp_path / "out", architecture_from=tiny_dir)
    assert "io.open" in str(refused.value)
    assert not marker.exists()
    # The file really runs code when unpickled in full, so the check above can fail.
    torch.load(malicious, map_location="cpu", weights_only=False)["metrics"]["final"].close()
    assert marker.exists()


def test_hub_backbones_keeps_only_the_heads(reference_folds, tiny_dir, tmp_path):
    paths = [f.best_path for f in reference_folds]
    out = convert_siqav3(paths, tmp_path / "heads-only", hub_backbones=True, architecture_from=tiny_dir)
    config = json.loads((out / "config.json").read_text())
    assert config["structure"]["repo_id"] == "timm/vit_base_patch16_dinov3.lvd1689m"
    assert config["semantic"]["repo_id"] == "openai/clip-vit-large-patch14-336"
    assert not (out / "structure").exists() and not (out / "semantic").exists()
    assert config["backbone_files"] == []


def rewrite(path: Path, tmp_path: Path, edit) -> Path:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    edit(checkpoint)
    target = tmp_path / f"edited_{path.parent.parent.name}.pth"
    torch.save(checkpoint, target)
    return target


def test_folds_with_different_backbones_are_refused(reference_folds, tiny_dir, tmp_path):
    key = "clip_backbone.vision_model.post_layernorm.bias"
    edited = rewrite(reference_folds[1].best_path, tmp_path, lambda c: c["model"][key].add_(0.01))
    with pytest.raises(ConversionError, match="semantic backbones of .* differ"):
        convert_siqav3([reference_folds[0].best_path, edited], tmp_path / "out", architecture_from=tiny_dir)


def test_unreadable_and_foreign_files_are_refused(reference_folds, tiny_dir, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    not_a_dict_config = rewrite(reference_folds[0].best_path, tmp_path, lambda c: c.__setitem__("config", [1]))
    for path, message in (
        (junk, "cannot read .*junk.pth as a torch checkpoint"),
        (foreign, "no 'model' state_dict"),
        (tmp_path / "x.pth", "not found"),
        (not_a_dict_config, "'config' should be the training config as a dict"),
    ):
        with pytest.raises(ConversionError, match=message) as refused:
            convert_siqav3([path], tmp_path / "out", architecture_from=tiny_dir)
        assert "--trust-pickle" not in str(refused.value)  # the full unpickler would not help
    missing_head = rewrite(reference_folds[0].best_path, tmp_path, lambda c: c["model"].pop("head.3.bias"))
    with pytest.raises(ConversionError, match="missing .*head.3.bias"):
        convert_siqav3([missing_head], tmp_path / "out", architecture_from=tiny_dir)


def test_reference_architecture_refuses_tiny_backbones_clearly(reference_folds, tmp_path):
    with pytest.raises(ConversionError, match="does not fit the expected architecture"):
        convert_siqav3([reference_folds[0].best_path], tmp_path / "out")


def test_cli(reference_folds, tiny_dir, tmp_path, capsys):
    paths = [str(f.best_path) for f in reference_folds]
    argv = ["convert-siqav3", *paths, "--out", str(tmp_path / "cli"), "--architecture-from", str(tiny_dir)]
    assert main(argv) == 0
    assert "converted 5 fold(s)" in capsys.readouterr().out
    assert main(["convert-siqav3", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1

    numpy_file = str(with_numpy_metrics(reference_folds[0], tmp_path / "numpy_metrics.pth"))
    argv = ["convert-siqav3", numpy_file, "--out", str(tmp_path / "np"), "--architecture-from", str(tiny_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-pickle" in err and not (tmp_path / "np").exists()
    assert main([*argv, "--trust-pickle"]) == 0
    assert "converted 1 fold(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "np" / "config.json").read_text())["provenance"]["source_loading"]

    with pytest.raises(SystemExit):
        main(["convert-siqav3", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "weights_only=True" in help_text and "weights_only=False" not in help_text
    assert "--trust-pickle" in help_text and "RUNS ARBITRARY CODE stored in the file" in help_text
    assert "only for files you trust" in help_text
