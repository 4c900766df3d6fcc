"""What a DSS-SQA training run hands over: the trained folds, their provenance, its progress and cache.

tests/test_train_recipe.py pins the recipe itself (float64 replay); tests/test_train.py the split,
the data checks and the command end to end. Here: the exported weights hold exactly the heads that
were trained (each fold scores its held-out pairs as training did), with the head architecture of
the config, as many folds as trained, a provenance that names the data (changing one image changes
its hash), the recipe, the backbones and the figures; `--cache` is where the features go.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from lovif_synthetic import make_lovif
from PIL import Image

from semantic_iqa import DSSSQA, __version__
from semantic_iqa.cli import main
from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG, HeadConfig
from semantic_iqa.metrics.dss_sqa.data import read_pairs
from semantic_iqa.metrics.dss_sqa.heads import FoldHeads
from semantic_iqa.metrics.dss_sqa.train import Recipe, make_optimiser, stratified_folds, train_folds

pytest.importorskip("openpyxl")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lovif(tmp_path_factory, photo) -> Path:
    return make_lovif(tmp_path_factory.mktemp("lovif"), photo)


def train_command(data: Path, out: Path, tiny_dir: Path, cache: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--backbones-from", str(tiny_dir), "--cache", str(cache),
        "--device", "cpu", "--epochs", "1", "--folds", "3", "--workers", "0",
    ]  # fmt: skip


def test_the_head_architecture_of_the_config_is_trained_and_progress_is_shown_only_when_asked(capsys):
    config = replace(REFERENCE_CONFIG, structure_dim=6, semantic_dim=8, head=HeadConfig(hidden_dims=(12, 6)))
    generator = torch.Generator().manual_seed(0)
    # float64 features (a cache of another precision): the trainer converts them to its float32 head
    structure = torch.randn(20, 2, 6, generator=generator, dtype=torch.float64)
    semantic = torch.randn(20, 2, 8, generator=generator, dtype=torch.float64)
    scores = (np.arange(10) % 6).astype(float)
    args = (config, structure, semantic, np.arange(10), np.arange(10, 20), scores)
    recipe = Recipe(folds=2, epochs=1, batch_size=4, seed=1)
    quiet = train_folds(*args, recipe=recipe, progress=False)
    assert capsys.readouterr().err == ""
    assert quiet.folds[0].head_state["linear1_weight"].shape == (1, 12, config.fusion_dim)
    assert quiet.folds[0].head_state["linear3_weight"].shape == (1, 6, 6)
    split = [fold.tolist() for fold in stratified_folds(scores, 2, seed=1)]
    assert (
        [fold.held_out.tolist() for fold in quiet.folds] == split != [f.tolist() for f in stratified_folds(scores, 2)]
    )
    train_folds(*args, recipe=recipe, progress=True)
    bar = capsys.readouterr().err
    assert re.search(r"(^|\r)training folds: ", bar) and "2/2" in bar and re.search(r"fold/s|s/fold", bar), bar


def test_the_optimiser_takes_the_recipes_settings():
    optimiser, schedule = make_optimiser(FoldHeads(1, 4), Recipe(lr=0.25, weight_decay=0.5, epochs=7))
    assert (optimiser.param_groups[0]["lr"], optimiser.param_groups[0]["weight_decay"]) == (0.25, 0.5)
    assert schedule.T_max == 7


def test_the_exported_folds_are_the_trained_ones_with_their_provenance(tiny_dir, lovif, tmp_path, capsys):
    data, out, cache = tmp_path / "data", tmp_path / "out", tmp_path / "cache"
    shutil.copytree(lovif, data)
    assert main(train_command(data, out, tiny_dir, cache)) == 0
    shown = capsys.readouterr().err  # the command shows its progress: the feature extraction, the folds
    assert "66/66" in shown and "image/s" in shown and "training folds" in shown, shown
    assert any(path.is_file() for path in cache.rglob("*")), "--cache holds the features"

    model = DSSSQA.from_pretrained(out, device="cpu")
    assert model.config.num_folds == 3
    # Each fold scores its held-out pairs exactly as training scored them (plain images, eval, gate on).
    pairs = read_pairs(data)
    fold_scores = model.predict(pairs.ref_paths, pairs.dist_paths, progress=False).fold_scores
    oof = list(csv.DictReader((out / "training" / "oof_predictions.csv").open(encoding="utf-8")))
    assert [row["name"] for row in oof] == list(pairs.names)
    held_out = torch.tensor([fold_scores[i, int(row["fold"])] for i, row in enumerate(oof)])
    torch.testing.assert_close(held_out, torch.tensor([float(row["prediction"]) for row in oof]), rtol=0, atol=1e-4)

    provenance = model.config.provenance
    tiny = DSSSQA.from_pretrained(tiny_dir, device="cpu").config
    data_hash = provenance["data_sha256"]
    assert provenance["trained_by"] == f"semantic-iqa {__version__} train"
    assert provenance["training_data"] == f"36 labelled pairs from data (sha256 {data_hash[:16]}...)"
    assert provenance["backbones_from"] == str(tiny_dir)
    assert provenance["backbones"] == {
        role: f"{spec.repo_id}@{spec.revision}" if spec.repo_id else f"stored ({spec.name})"
        for role, spec in (("structure", tiny.structure), ("semantic", tiny.semantic))
    }
    assert provenance["recipe"]["epochs"] == 1 and provenance["recipe"]["folds"] == 3
    pooled = json.loads((out / "training" / "report.json").read_text(encoding="utf-8"))["pooled"]
    figures = provenance["cross_validation"]
    assert {name: figures[f"pooled {name}"] for name in pooled} == {k: round(v, 4) for k, v in pooled.items()}
    summary = json.loads((out / "training" / "report.json").read_text(encoding="utf-8"))
    for name in ("srocc", "plcc", "final"):
        assert figures[f"{name} (fold mean, std)"] == [round(v, 4) for v in summary[f"{name}_fold_mean_std"]]

    # One distorted image changed (not the first pair's): another data set, another hash. The score
    # table given apart (--scores), into a folder of someone's files (--overwrite).
    last = pairs.dist_paths[-1]
    Image.open(last).convert("RGB").rotate(90).save(last)
    table = tmp_path / "scores.xlsx"
    shutil.move(data / "Train_scores.xlsx", table)
    again = tmp_path / "occupied"
    again.mkdir()
    (again / "notes.txt").write_text("mine")
    command = [*train_command(data, again, tiny_dir, cache), "--scores", str(table), "--overwrite"]
    assert main(command) == 0, capsys.readouterr().err
    provenance = DSSSQA.from_pretrained(again, device="cpu").config.provenance
    assert len(provenance["data_sha256"]) == 64 and provenance["data_sha256"] != data_hash

    # Never into an input, even with --overwrite.
    inside = data / "Ref" / "weights"
    assert main([*train_command(data, inside, tiny_dir, cache), "--scores", str(table), "--overwrite"]) == 2
    assert "inside the input folder" in capsys.readouterr().err and not inside.exists()


def test_the_export_keeps_the_head_architecture_and_each_trained_fold(tiny_model):
    from semantic_iqa.metrics.dss_sqa.train_folder import export_model

    config = replace(tiny_model.config, head=HeadConfig(hidden_dims=(12, 6)))
    base = DSSSQA(config, tiny_model.structure, tiny_model.semantic, FoldHeads(5, config.fusion_dim, config.head))
    generator = torch.Generator().manual_seed(0)
    structure = torch.randn(20, 2, config.structure_dim, generator=generator)
    semantic = torch.randn(20, 2, config.semantic_dim, generator=generator)
    scores = (np.arange(10) % 6).astype(float)
    result = train_folds(config, structure, semantic, np.arange(10), np.arange(10, 20), scores,
                         recipe=Recipe(folds=2, epochs=1, batch_size=4), progress=False)  # fmt: skip
    exported = export_model(base, result, {"note": "test"})
    assert exported.config.num_folds == 2 and exported.config.head.hidden_dims == (12, 6)
    assert exported.config.provenance == {"note": "test"}
    for fold, trained in enumerate(result.folds):
        for attr, tensor in trained.head_state.items():
            assert torch.equal(getattr(exported.heads, attr)[fold], tensor[0]), (fold, attr)


def test_the_python_call_is_quiet_when_asked_and_never_writes_into_someone_s_folder(tiny_dir, lovif, tmp_path, capsys):
    from semantic_iqa.errors import WeightsOutputError
    from semantic_iqa.metrics.dss_sqa.train_folder import train_from_folder

    options = {"backbones_from": tiny_dir, "cache_dir": tmp_path / "cache", "device": "cpu"}
    train_from_folder(lovif, tmp_path / "out", recipe=Recipe(folds=3, epochs=1), progress=False, **options)
    assert capsys.readouterr().err == ""
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(WeightsOutputError, match="pass --overwrite"):
        train_from_folder(lovif, occupied, recipe=Recipe(folds=3, epochs=1), progress=False, **options)
    assert [path.name for path in occupied.iterdir()] == ["notes.txt"]
