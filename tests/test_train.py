"""Training on cached features: the reference split, the data checks, the cache, end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lovif_synthetic import make_lovif

from semantic_iqa import DSSSQA
from semantic_iqa.cli import main
from semantic_iqa.errors import DatasetError
from semantic_iqa.inputs import load_padded
from semantic_iqa.metrics.dss_sqa.data import read_pairs
from semantic_iqa.metrics.dss_sqa.features import FeatureCache
from semantic_iqa.metrics.dss_sqa.train import Recipe, stratified_folds, train_folds

pytest.importorskip("openpyxl")


@pytest.fixture(scope="module")
def lovif(tmp_path_factory, photo) -> Path:
    return make_lovif(tmp_path_factory.mktemp("lovif"), photo)


def test_split_matches_a_hand_worked_example():
    scores = np.array([0, 1, 0, 1, 0, 2, 1, 0])
    # Bins in first-seen order: 0 -> [0, 2, 4, 7], 1 -> [1, 3, 6], 2 -> [5], shuffled by ONE generator.
    rng = np.random.default_rng(3407)
    bin0, bin1, bin2 = rng.permutation([0, 2, 4, 7]), rng.permutation([1, 3, 6]), rng.permutation([5])
    expected = [[], [], []]
    for members in (bin0, bin1, bin2):
        for position, index in enumerate(members):
            expected[position % 3].append(int(index))
    folds = stratified_folds(scores, folds=3, seed=3407)
    assert [f.tolist() for f in folds] == [sorted(e) for e in expected]


def test_split_of_the_published_class_counts_is_stratified_and_complete():
    counts = {0: 48, 1: 93, 2: 96, 3: 90, 4: 84, 5: 99}  # LoViF train labels (datasets.md)
    scores = np.random.default_rng(1).permutation(np.repeat(list(counts), list(counts.values())))
    folds = stratified_folds(scores)
    assert sorted(np.concatenate(folds).tolist()) == list(range(510))
    for label, count in counts.items():
        per_fold = [int((scores[f] == label).sum()) for f in folds]
        assert sum(per_fold) == count and max(per_fold) - min(per_fold) <= 1
    assert [len(f) for f in folds] == [len(f) for f in stratified_folds(scores)], "deterministic"


def test_reads_the_lovif_layout(lovif):
    pairs = read_pairs(lovif)
    assert len(pairs) == 36 and pairs.names[0] == "000001.png" and pairs.names[1] == "000002.png"
    assert pairs.scores.tolist()[:6] == [0, 1, 2, 3, 4, 5]


def test_csv_table_and_bad_data_sets_list_every_problem(lovif, tmp_path):
    broken = Path(shutil.copytree(lovif, tmp_path / "Train"))
    (broken / "Train_scores.xlsx").unlink()
    (broken / "Dist" / "000004.png").unlink()
    (broken / "Ref" / "000005.png").write_bytes(b"not a png")
    rows = [
        "name,score",
        "000001.png,3",
        "000002,abc",
        "000003.png,7",
        "000004.png,2",
        "000005.png,1",
        "000001.png,4",
        "000099.png,2",
    ]
    (broken / "scores.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as caught:
        read_pairs(broken)
    message = str(caught.value)
    assert message.startswith("7 problem(s)")
    for expected in (
        "line 3: score 'abc' is not a number",
        "line 4: score 7 is outside [0, 5]",
        "000004.png is missing in Dist/",
        "Ref/000005.png cannot be read",
        "line 7: 000001.png is listed again (first on line 2)",
        "000099.png is missing in Ref/",
    ):
        assert expected in message
    good = broken / "good.csv"
    good.write_text("000001,3\n000002.png,2\n")
    assert len(read_pairs(broken, good)) == 2


def test_feature_cache_is_reused_and_resumes(tiny_dir, lovif, tmp_path):
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    paths = sorted((lovif / "Ref").glob("*.png"))
    first = FeatureCache(tmp_path, model)
    first.extract(paths[:10], progress=False)  # an extraction "interrupted" after 10 images
    (first.folder / "shard-stray.partial").write_bytes(b"left by a killed run")
    resumed = FeatureCache(tmp_path, model)
    keys = resumed.extract(paths, batch_size=8, progress=False)
    assert resumed.computed == len(paths) - 10
    warm = FeatureCache(tmp_path, model)
    assert warm.extract(paths, progress=False) == keys and warm.computed == 0, "no backbone work when warm"
    structure, semantic = warm.load(keys[:3])
    assert structure.shape == (3, 2, model.config.structure_dim)
    with torch.no_grad():
        padded = torch.stack([load_padded(p, 224) for p in paths[:3]])
        direct = model.encode(torch.cat([padded, padded.flip(-1)]))
    torch.testing.assert_close(structure[:, 0], direct.structure[:3])
    torch.testing.assert_close(semantic[:, 1], direct.semantic[3:])


def test_training_is_reproducible(tiny_dir):
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    generator = torch.Generator().manual_seed(0)
    structure = torch.randn(20, 2, model.config.structure_dim, generator=generator)
    semantic = torch.randn(20, 2, model.config.semantic_dim, generator=generator)
    scores = np.arange(10) % 6
    args = (model.config, structure, semantic, np.arange(10), np.arange(10, 20), scores.astype(float))
    a = train_folds(*args, recipe=Recipe(folds=2, epochs=3, batch_size=4), progress=False)
    b = train_folds(*args, recipe=Recipe(folds=2, epochs=3, batch_size=4), progress=False)
    np.testing.assert_array_equal(a.out_of_fold, b.out_of_fold)
    for fa, fb in zip(a.folds, b.folds, strict=True):
        assert all(torch.equal(fa.head_state[k], fb.head_state[k]) for k in fa.head_state)


def test_train_command_end_to_end(tiny_dir, lovif, tmp_path, capsys):
    out = tmp_path / "trained"
    argv = [
        "train",
        "--data",
        str(lovif),
        "--out",
        str(out),
        "--backbones-from",
        str(tiny_dir),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--epochs",
        "3",
        "--workers",
        "0",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| pooled | 36 |" in printed and printed.count("\n| ") >= 6
    model = DSSSQA.from_pretrained(out, device="cpu")
    assert model.config.num_folds == 5
    assert model.config.provenance["recipe"]["seed"] == 3407 and len(model.config.provenance["data_sha256"]) == 64
    pairs = read_pairs(lovif)
    scores = model.predict(pairs.ref_paths[:4], pairs.dist_paths[:4]).score
    assert torch.isfinite(scores).all()
    report = json.loads((out / "training" / "report.json").read_text())
    assert len(report["per_fold"]) == 5 and set(report["pooled"]) == {"srocc", "plcc", "final", "mae", "rmse"}
    rows = list(csv.DictReader((out / "training" / "oof_predictions.csv").open()))
    assert len(rows) == 36 and {r["fold"] for r in rows} == {"0", "1", "2", "3", "4"}
    assert "| pooled srocc |" in (out / "README.md").read_text()
    if importlib.util.find_spec("matplotlib"):
        assert (out / "training" / "oof_scatter.png").stat().st_size > 1000

    # A second run reuses the cache: no image goes through the backbones again.
    again = tmp_path / "again"
    assert main([*argv[:4], str(again), *argv[5:]]) == 0
    assert json.loads((again / "training" / "report.json").read_text()) == report, "same seed, same result"


def test_train_command_refuses_a_bad_data_set_before_any_work(tiny_dir, tmp_path, capsys):
    (tmp_path / "Ref").mkdir()
    (tmp_path / "Dist").mkdir()
    (tmp_path / "scores.csv").write_text("a.png,1\n")
    status = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--backbones-from", str(tiny_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "2 problem(s)" in err[0]


def test_train_command_refuses_an_occupied_output_folder_before_any_work(tiny_dir, lovif, tmp_path, capsys):
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = [
        "train",
        "--data",
        str(lovif),
        "--out",
        str(out),
        "--backbones-from",
        str(tiny_dir),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    assert main(argv) == 2
    assert "refusing to write weights into" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists(), "no feature was extracted"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_too_few_pairs_for_the_folds_is_refused_before_any_work():
    from semantic_iqa.errors import DatasetError
    from semantic_iqa.metrics.dss_sqa.train import checked_folds

    scores = np.repeat(np.arange(6), 4)  # 24 pairs, 4 per class: the fifth fold would hold out nothing
    with pytest.raises(DatasetError, match=r"fold\(s\) \[4\] would hold out fewer than 2 pairs"):
        checked_folds(scores, folds=5)
    assert [len(f) for f in checked_folds(scores, folds=4)] == [6, 6, 6, 6]


def test_the_default_split_is_the_reference_seed_and_a_given_seed_is_used():
    from semantic_iqa.metrics.dss_sqa.train import checked_folds

    scores = np.random.default_rng(2).integers(0, 6, 60).astype(float)
    reference = [f.tolist() for f in stratified_folds(scores, 5, 3407)]
    assert [f.tolist() for f in stratified_folds(scores)] == reference
    assert [f.tolist() for f in checked_folds(scores)] == reference
    other = [f.tolist() for f in stratified_folds(scores, 5, 1)]
    assert other != reference  # the data tell the seeds apart
    assert [f.tolist() for f in checked_folds(scores, 5, 1)] == other


def test_folds_of_exactly_two_held_out_pairs_are_accepted_and_one_fold_is_refused():
    from semantic_iqa.errors import InvalidOptionError
    from semantic_iqa.metrics.dss_sqa.train import checked_folds

    assert [len(f) for f in checked_folds(np.zeros(10), folds=5)] == [2] * 5
    with pytest.raises(InvalidOptionError, match="^cross-validation needs at least 2 folds, got 1$"):
        checked_folds(np.zeros(10), folds=1)
    # Even an empty fold (fewer pairs than folds) is a list of row indices.
    assert [f.dtype for f in stratified_folds(np.array([1.0, 2.0]), 5)] == [np.dtype(np.int64)] * 5
