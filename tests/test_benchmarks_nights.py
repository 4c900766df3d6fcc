"""NIGHTS 2AFC in the benchmark harness, and DreamSim as a row of LoViF and BAPPS (issue 22).

The data sets are synthetic, in their published layouts (`nights_synthetic.py`); our metrics
are tiny random models of the real classes, so figures are checked by hand where the metric is
a real one (piq's SSIM) and only for plumbing and direction where it is random.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lovif_synthetic import make_lovif
from nights_synthetic import HEADER, make_nights, write_table
from PIL import ImageFilter

from semantic_iqa.errors import DatasetError
from semantic_iqa.registry import metric_info, register_metric

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import nights  # noqa: E402
from benchmarks import run as harness  # noqa: E402
from benchmarks.bench_metric import dreamsim_metric, dss_sqa_metric  # noqa: E402

piq = pytest.importorskip("piq")
pytest.importorskip("openpyxl")
ALL = ("train", "val", "test")


@pytest.fixture(scope="module")
def dreamsim_dir(tmp_path_factory) -> Path:
    """A tiny random DreamSim ensemble, saved as a weights folder (what `make-tiny --metric dreamsim` writes)."""
    folder = tmp_path_factory.mktemp("dreamsim") / "tiny"
    metric_info("dreamsim").build_tiny(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture
def synthetic(tmp_path, photo):
    return make_nights(tmp_path / "data", photo)


# -- the score ------------------------------------------------------------------------------
def test_group_figures_by_hand_with_ties_and_unanimous_votes():
    d_left = np.array([0.1, 0.5, 0.3, 0.2, 0.7, 0.4, 0.2])
    d_right = np.array([0.2, 0.4, 0.3, 0.9, 0.1, 0.6, 0.3])
    p = np.array([0.0, 1.0, 1.0, 0.75, 0.25, 1.0, 0.5])  # right_vote: the share who found RIGHT closer
    groups = {"a": np.array([1, 1, 1, 0, 0, 0, 0], bool), "b": np.array([0, 0, 0, 1, 1, 1, 1], bool)}
    figures = nights.group_figures(d_left, d_right, p, groups)
    # left closer: 1 - p; right closer: p; tie: 0.5 whatever p.
    per_triplet = [1 - 0.0, 1.0, 0.5, 1 - 0.75, 0.25, 1 - 1.0, 1 - 0.5]
    assert figures["a"]["2afc"] == pytest.approx(100 * np.mean(per_triplet[:3]))  # 83.3
    assert figures["b"]["2afc"] == pytest.approx(100 * np.mean(per_triplet[3:]))  # 25.0
    assert figures["a"]["triplets"] == 3 and figures["b"]["triplets"] == 4
    # Majorities (p >= 0.5: right, as the authors round): left, right, right | right, left, right, right.
    # Picks: left, right, tie | left, right, left, left.
    assert figures["a"]["hard_accuracy"] == pytest.approx(100 * 2.5 / 3)
    assert figures["b"]["hard_accuracy"] == pytest.approx(0.0)


def test_groups_split_test_by_imagenet(synthetic):
    data = nights.read_nights(synthetic.folder, ALL)
    groups = data.groups()
    assert list(groups) == ["train", "val", "test", nights.TEST_IMAGENET, nights.TEST_OTHER]
    assert [int(m.sum()) for m in groups.values()] == [2, 3, 6, 2, 4]
    imagenet = [r["id"] for r in synthetic.kept(("test",)) if r["is_imagenet"] == "True"]
    assert [data.ids[i] for i in np.flatnonzero(groups[nights.TEST_IMAGENET])] == imagenet
    only_test = nights.read_nights(synthetic.folder)  # the default: test
    assert len(only_test) == 6 and set(only_test.split) == {"test"}


# -- the reader -------------------------------------------------------------------------------
def test_reader_keeps_votes_of_6_or_more_and_takes_right_vote_as_p(synthetic, tmp_path):
    data = nights.read_nights(synthetic.folder.parent, ALL)  # the folder above nights/ works too
    kept = synthetic.kept()
    assert len(data) == len(kept) == 11 and data.dropped == 3
    assert list(data.ids) == [r["id"] for r in kept]
    np.testing.assert_allclose(data.p, [float(r["right_vote"]) for r in kept])
    assert not np.allclose(data.p, [float(r["left_vote"]) for r in kept])
    assert data.right[0] == synthetic.folder / kept[0]["right_path"] and data.right[0].name.endswith("_1.png")
    assert data.left[0] == synthetic.folder / kept[0]["left_path"] and data.ref[0].parent.parent.name == "ref"
    assert data.is_imagenet.tolist() == [r["is_imagenet"] == "True" for r in kept]


def test_rows_with_fewer_votes_do_not_count(synthetic):
    """Rows with 3-5 votes (contrary judgements) would change the score if they were read."""
    data = nights.read_nights(synthetic.folder, ALL)
    light_is_right = np.array([r["light"] == "right" for r in synthetic.kept()])
    d_left, d_right = np.where(light_is_right, 1.0, 0.0), np.where(light_is_right, 0.0, 1.0)
    figures = nights.group_figures(d_left, d_right, data.p, data.groups())
    expected = [
        float(r["right_vote"]) if r["light"] == "right" else 1 - float(r["right_vote"]) for r in synthetic.kept()
    ]
    assert figures["test"]["2afc"] == pytest.approx(100 * np.mean(expected[-6:]))
    every = [r for r in synthetic.rows if r["split"] == "test"]
    with_dropped = [float(r["right_vote"]) if r["light"] == "right" else 1 - float(r["right_vote"]) for r in every]
    assert figures["test"]["2afc"] != pytest.approx(100 * np.mean(with_dropped))


def test_missing_table_wrong_header_and_unreadable_values_are_typed(synthetic, tmp_path):
    with pytest.raises(DatasetError, match="no data.csv in"):
        nights.read_nights(tmp_path / "empty")
    table = synthetic.folder / "data.csv"
    renamed = [("right_votes" if c == "right_vote" else c) for c in HEADER]
    write_table(
        table, [{("right_votes" if k == "right_vote" else k): v for k, v in r.items()} for r in synthetic.rows], renamed
    )
    with pytest.raises(DatasetError, match=r"column\(s\) right_vote missing; the published data.csv starts with id,"):
        nights.read_nights(synthetic.folder)
    broken = [dict(r) for r in synthetic.rows]
    broken[0]["right_vote"] = "6"  # a count, not a share
    broken[1]["split"] = "dev"
    broken[2]["is_imagenet"] = "maybe"
    broken[3]["ref_path"] = "../outside.png"
    broken[-1]["right_vote"] = "9"  # a dropped row: not read, not a problem
    write_table(table, broken)
    with pytest.raises(DatasetError, match=r"4 problem\(s\)") as caught:
        nights.read_nights(synthetic.folder)
    message = str(caught.value)
    assert "line 2 (id 1000): right_vote '6' is not a share in [0, 1]" in message
    assert "split 'dev'" in message and "is_imagenet 'maybe'" in message and "'../outside.png'" in message


def test_missing_images_are_listed_and_an_empty_split_is_named(synthetic):
    test_rows = [r for r in synthetic.kept() if r["split"] == "test"]
    for row, column in ((test_rows[0], "left_path"), (test_rows[1], "ref_path")):
        (synthetic.folder / row[column]).unlink()
    with pytest.raises(DatasetError, match=r"2 image file\(s\) named in .*data.csv are missing") as caught:
        nights.read_nights(synthetic.folder)
    for row, column in ((test_rows[0], "left_path"), (test_rows[1], "ref_path")):
        assert str(synthetic.folder / row[column]) in str(caught.value)
    assert nights.read_nights(synthetic.folder, ("train",)).dropped == 3, "only the chosen split's files are needed"
    no_val = [dict(r, votes="5") if r["split"] == "val" else r for r in synthetic.rows]
    write_table(synthetic.folder / "data.csv", no_val)
    with pytest.raises(DatasetError, match=r"split\(s\) val of .* have no triplet with votes >= 6"):
        nights.read_nights(synthetic.folder, ("train", "val"))


# -- direction: from the registry -------------------------------------------------------------
def test_direction_comes_from_the_registry_entry(synthetic, dreamsim_dir, tiny_dir):
    data = nights.read_nights(synthetic.folder, ALL)
    assert dss_sqa_metric(str(tiny_dir), "cpu", 8).higher_is_better is metric_info("dss_sqa").higher_is_better is True
    as_registered = dreamsim_metric(str(dreamsim_dir), "cpu", 8)
    assert as_registered.higher_is_better is False
    original = metric_info("dreamsim")
    register_metric(dataclasses.replace(original, higher_is_better=True), replace=True)
    try:
        flipped = dreamsim_metric(str(dreamsim_dir), "cpu", 8)
    finally:
        register_metric(original, replace=True)
    assert flipped.higher_is_better is True
    first = nights.run_nights(data, [as_registered], {})["scores"]["DreamSim"]
    second = nights.run_nights(data, [flipped], {})["scores"]["DreamSim"]
    for group in data.groups():  # no ties: the flipped comparison agrees exactly where the other does not
        assert second[group]["2afc"] == pytest.approx(100 - first[group]["2afc"])
    assert first["test"]["2afc"] != pytest.approx(50.0)


def test_metrics_without_a_row_are_listed_with_the_reason_from_their_registry_entry():
    reasons = nights.not_run([], harness.WEIGHT_FLAGS)
    assert reasons["DreamSim"] == "no weights given (--dreamsim-weights)"
    assert reasons["DSS-SQA"] == "no weights given (--weights)"
    assert reasons["MST-CLIPIQA"].startswith("no-reference: it scores one image alone")
    original = metric_info("dreamsim")
    register_metric(dataclasses.replace(original, kind="NR"), replace=True)
    try:
        assert nights.not_run([], {})["DreamSim"].startswith("no-reference"), "the kind is the entry's"
    finally:
        register_metric(original, replace=True)


# -- the whole command ------------------------------------------------------------------------
def test_run_scores_nights_lovif_and_bapps_with_dreamsim_beside_the_baselines(
    synthetic, tmp_path, photo, tiny_dir, dreamsim_dir, capsys
):
    make_lovif(tmp_path / "LoViF", photo, pairs=6)
    bapps = tmp_path / "BAPPS" / "2afc" / "val" / "traditional"
    for index in range(2):
        crop = photo.crop((40 * index, 0, 40 * index + 64, 64))
        for part, image in (("ref", crop), ("p0", crop.filter(ImageFilter.GaussianBlur(0.5))), ("p1", crop)):
            (bapps / part).mkdir(parents=True, exist_ok=True)
            image.save(bapps / part / f"{index:06d}.png")
        (bapps / "judge").mkdir(exist_ok=True)
        np.save(bapps / "judge" / f"{index:06d}.npy", np.array([0.8]))
    out = tmp_path / "results"
    results = harness.main(
        [
            *("--nights", str(synthetic.folder), "--nights-split", "val", "test", "--out", str(out)),
            *("--lovif", str(tmp_path / "LoViF"), "--bapps", str(tmp_path / "BAPPS")),
            *("--weights", str(tiny_dir), "--dreamsim-weights", str(dreamsim_dir), "--device", "cpu"),
            *("--baselines", "SSIM", "--speed-batch-sizes"),
        ]
    )
    rows = {m["name"]: m for m in results["metrics"]}
    assert list(rows) == ["DSS-SQA", "DreamSim", "SSIM"]
    assert rows["DreamSim"]["higher_is_better"] is False and rows["DreamSim"]["random_weights"]
    assert rows["DreamSim"]["variant"] == "ensemble" and rows["DreamSim"]["registry_name"] == "dreamsim"
    result = results["nights"]
    assert result["groups"] == ["val", "test", nights.TEST_IMAGENET, nights.TEST_OTHER]
    assert result["triplets"] == 9 and result["dropped_fewer_votes"] == 3
    assert set(result["scores"]) == set(rows)
    # SSIM (piq, real) finds the light blur closer every time: the figure is known by hand.
    for group, rows in (
        ("val", synthetic.kept(("val",))),
        ("test", synthetic.kept(("test",))),
        (nights.TEST_IMAGENET, [r for r in synthetic.kept(("test",)) if r["is_imagenet"] == "True"]),
    ):
        assert result["scores"]["SSIM"][group]["2afc"] == pytest.approx(light_side(rows)), group
    assert "no-reference" in result["skipped"]["MST-CLIPIQA"]
    assert "NIGHTS: MST-CLIPIQA skipped: no-reference" in capsys.readouterr().out

    # DreamSim on LoViF and BAPPS: a distance, correlated as its negative, compared as it is.
    lovif = results["lovif"]["Train"]["DreamSim"]
    model = dreamsim_metric(str(dreamsim_dir), "cpu", 8).model
    train = tmp_path / "LoViF" / "Train"
    distance = model.predict(train / "Ref" / "000001.png", train / "Dist" / "000001.png").score.item()
    assert lovif["predictions"][0] == pytest.approx(-distance) and distance > 0
    # p1 is the reference itself: distance 0 (< p0's), so the metric picks p1, as 80 % of people did.
    assert results["bapps"]["DreamSim"]["traditional"]["2afc"] == pytest.approx(80.0)

    report = (out / "report.md").read_text()
    assert "| DreamSim ensemble (semantic-iqa" in report and "(RANDOM WEIGHTS: plumbing test only" in report
    assert "| −distance |" in report and "| score |" in report and "Correlated as −distance" in report
    assert "## NIGHTS 2AFC (9 triplets with votes >= 6; 3 row(s) with fewer votes dropped)" in report
    assert "| DreamSim ensemble (DreamSim README) | 96.9 | 96.2 |" in report
    assert "- MST-CLIPIQA: skipped: no-reference" in report
    saved = json.loads((out / "results.json").read_text())
    assert {e["variant"] for e in saved["published"]["nights_2afc"]} >= {"ensemble", "dino_vitb16", "open_clip_vitb32"}
    assert (out / "nights_2afc.png").stat().st_size > 1000


def light_side(rows: list[dict]) -> float:
    return 100 * float(
        np.mean([float(r["right_vote"]) if r["light"] == "right" else 1 - float(r["right_vote"]) for r in rows])
    )


def test_a_broken_nights_is_one_line_and_exit_code_2_before_any_model(synthetic, tmp_path):
    shutil.rmtree(synthetic.folder / "distort")
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--nights", str(synthetic.folder)]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "out"), "--weights", str(tmp_path / "no-weights")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: NIGHTS: 12 image file(s) named in"), done.stderr
    assert not (tmp_path / "out").exists(), "stopped before anything was built or written"


@pytest.mark.parametrize(("random", "expected"), [(set(), False), ({"SSIM"}, True), ({"DreamSim"}, True)])
def test_the_nights_figure_says_random_weights_when_a_row_is_random(random, expected):
    plots = pytest.importorskip("benchmarks.plots")
    figures = {"2afc": 70.0, "triplets": 3, "hard_accuracy": 66.7}
    results = {
        "metrics": [
            {"name": n, "label": f"{n} (x)", "random_weights": n in random, "note": "", "variant": v}
            for n, v in (("DreamSim", "ensemble"), ("SSIM", None))
        ],
        "published": harness.published(),
        "nights": {
            "groups": ["val", "test"],
            "triplets": 6,
            "scores": {"DreamSim": {"val": figures, "test": figures}, "SSIM": {"test": figures}},
        },
    }
    figure = plots.plot_nights_2afc(results)
    title = figure.get_suptitle()
    assert (plots.RANDOM_TITLE in title) is expected and "published (DreamSim README) hatched" in title
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    ours = [t for t in legend if t.startswith("DreamSim (x)")]
    assert len(ours) == 1 and ("[random weights]" in ours[0]) is ("DreamSim" in random)
    # The published ensemble figure right after our ensemble row; every other one after ours.
    assert legend[1] == "DreamSim ensemble (DreamSim README): published"
    assert sum(t.endswith(": published") for t in legend) == len(harness.PUBLISHED_NIGHTS)
    assert legend[-1].startswith("chance 50")
