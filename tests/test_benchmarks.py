"""The benchmark harness: 2AFC and correlation formulas by hand, and the whole report on synthetic layouts."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lovif_synthetic import make_lovif
from PIL import Image, ImageFilter
from scipy import stats

from semantic_iqa.evaluation import agreement, final_score, srocc, two_afc, two_afc_hard_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import run as harness  # noqa: E402

piq = pytest.importorskip("piq")
pytest.importorskip("openpyxl")


def test_two_afc_by_hand_with_ties():
    d0 = [0.1, 0.5, 0.3, 0.2]
    d1 = [0.2, 0.4, 0.3, 0.9]
    judge = [0.3, 0.8, 0.6, 1.0]
    # p0 closer: 1 - judge; p1 closer: judge; tie: 0.5.
    expected = [1 - 0.3, 0.8, 0.5, 1 - 1.0]
    np.testing.assert_allclose(two_afc(d0, d1, judge), expected)
    # Majority: p0, p1, p1, p1. Metric picks p0, p1, tie, p0 -> 1, 1, 0.5, 0.
    assert two_afc_hard_accuracy(d0, d1, judge) == pytest.approx(2.5 / 4)


def test_srocc_and_final_against_scipy_on_rankings_with_ties():
    labels = np.array([0, 0, 1, 1, 1, 3, 5, 5])
    predicted = np.array([0.2, 0.2, 0.9, 1.4, 0.9, 2.0, 4.5, 3.9])
    assert srocc(predicted, labels) == pytest.approx(stats.spearmanr(predicted, labels).statistic)
    # Ties averaged: an argsort ranking of the labels would give another value.
    argsort_rank = lambda v: np.argsort(np.argsort(v, kind="stable"))  # noqa: E731
    plain = np.corrcoef(argsort_rank(predicted), argsort_rank(labels))[0, 1]
    assert srocc(predicted, labels) != pytest.approx(plain)
    figures = agreement(predicted, labels)
    expected_final = (
        0.6 * stats.spearmanr(predicted, labels).statistic + 0.4 * stats.pearsonr(predicted, labels).statistic
    )
    assert figures["final"] == pytest.approx(expected_final) == final_score(figures["srocc"], figures["plcc"])
    assert figures["mae"] == pytest.approx(np.mean(np.abs(predicted - labels)))


def make_bapps(root: Path, photo: Image.Image, triplets: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for subset in harness.BAPPS_SUBSETS:
        for part in ("ref", "p0", "p1", "judge"):
            (root / "2afc" / "val" / subset / part).mkdir(parents=True)
        for index in range(triplets):
            name = f"{index:06d}"
            left, top = (int(v) for v in rng.integers(0, 180, 2))
            ref = photo.crop((left, top, left + 64, top + 64))
            folder = root / "2afc" / "val" / subset
            ref.save(folder / "ref" / f"{name}.png")
            ref.filter(ImageFilter.GaussianBlur(0.5)).save(folder / "p0" / f"{name}.png")
            ref.filter(ImageFilter.GaussianBlur(2.5)).save(folder / "p1" / f"{name}.png")
            np.save(folder / "judge" / f"{name}.npy", np.array([rng.uniform(0, 0.4)]))
    return root


def one_subset_bapps(root: Path, photo: Image.Image) -> Path:
    """Two triplets of the traditional subset only (the others are reported missing): for slow metrics."""
    make_bapps(root, photo, triplets=2)
    for subset in harness.BAPPS_SUBSETS[1:]:
        shutil.rmtree(root / "2afc" / "val" / subset)
    return root


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, photo):
    root = tmp_path_factory.mktemp("data")
    lovif = root / "LoViF"
    make_lovif(lovif, photo, pairs=12)
    test_split = lovif / "Test"
    (test_split / "Ref").mkdir(parents=True)
    (test_split / "Dist").mkdir()
    for index in range(3):
        photo.crop((index * 10, 0, 150, 140)).save(test_split / "Ref" / f"{index + 1:06d}.png")
        photo.crop((index * 10, 0, 150, 140)).rotate(5).save(test_split / "Dist" / f"{index + 1:06d}.png")
    return lovif, make_bapps(root / "BAPPS", photo)


SPEED = ["--speed-size", "32", "--repeats", "3", "--speed-min-time", "0"]


@pytest.fixture
def no_network(monkeypatch):
    """Any connection or name lookup fails loudly: weights must come from where the test put them."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_report_end_to_end(layouts, tiny_dir, tmp_path, capsys):
    lovif, bapps = layouts
    out = tmp_path / "results"
    results = harness.main(
        [
            *("--lovif", str(lovif), "--bapps", str(bapps), "--out", str(out), "--weights", str(tiny_dir)),
            *("--device", "cpu", "--baselines", "SSIM", "PSNR", "--speed-batch-sizes", "1", "2", *SPEED),
        ]
    )
    names = [m["name"] for m in results["metrics"]]
    assert names == ["DSS-SQA", "SSIM", "PSNR"]
    rows = {m["name"]: m for m in results["metrics"]}
    assert rows["SSIM"]["label"] == f"SSIM (piq {piq.__version__})"
    assert rows["PSNR"]["implementation"].startswith(f"piq {piq.__version__}: piq.psnr(data_range=1.0")
    assert [rows[n]["random_weights"] for n in names] == [True, False, False], "make-tiny is random, SSIM is not"
    train = results["lovif"]["Train"]
    assert set(train) == set(names) and train["SSIM"]["pairs"] == 12
    assert train["SSIM"]["srocc"] > 0.5, "blur+noise labels: SSIM must rank them"
    # The row is piq's SSIM on RGB in [0, 1], the distorted image resized to the reference's size.
    ref, dist = harness._same_size(lovif / "Train" / "Ref" / "000001.png", lovif / "Train" / "Dist" / "000001.png")
    expected = piq.ssim(dist[None], ref[None], data_range=1.0).item()
    assert train["SSIM"]["predictions"][0] == pytest.approx(expected, abs=1e-6)
    bapps_ssim = results["bapps"]["SSIM"]
    assert set(bapps_ssim) == {*harness.BAPPS_SUBSETS, harness.OVERALL, "pooled"}
    assert bapps_ssim["traditional"]["triplets"] == 3
    # p0 is always the less blurred: SSIM picks it, and judge < 0.4 says people did too.
    assert bapps_ssim["traditional"]["hard_accuracy"] == 100.0

    speed = results["speed"]
    assert {r["metric"] for r in speed} == {*names, "DSS-SQA, cached references"} and len(speed) == 8
    for row in speed:
        assert row["samples"] == 3 and row["calls"] >= 3 and row["size"] == 32
        assert row["pairs_per_s_min"] <= row["pairs_per_s_q1"] <= row["pairs_per_s"] <= row["pairs_per_s_q3"]
        assert row["pairs_per_s_q3"] <= row["pairs_per_s_max"]
        assert row["s_per_call"] == pytest.approx(row["batch"] / row["pairs_per_s"], rel=0.3)
        assert row["random_weights"] == row["metric"].startswith("DSS-SQA")

    report = (out / "report.md").read_text()
    assert f"| SSIM (piq {piq.__version__}) | piq {piq.__version__}: piq.ssim(" in report
    assert "PLCC (logistic fit)" in report and "human (LPIPS paper)" in report
    assert "| DSS-SQA (semantic-iqa" in report and "(RANDOM WEIGHTS: plumbing test only" in report
    assert "## LoViF Test: no labels; submission written" in report
    submission = (out / "submission_Test" / "predictions.csv").read_text().splitlines()
    assert submission[0] == "picture_name,Score" and len(submission) == 4
    assert "runtime per image" in (out / "submission_Test" / "readme.txt").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert saved["environment"]["packages"]["piq"] == piq.__version__
    assert saved["environment"]["device"].startswith("cpu")
    assert saved["published"]["bapps_human"]["figures"]["overall"] == 73.9
    assert {e["metric"] for e in saved["published"]["bapps_2afc"]} == {"SSIM", "LPIPS-VGG", "DISTS", "DSS-SQA"}
    for plot in ("lovif_Train_scatter.png", "bapps_2afc.png", "throughput.png"):
        assert (out / plot).stat().st_size > 1000


def test_random_piq_baselines_offline_are_marked_and_leave_the_cache_alone(
    tiny_dir, tmp_path, photo, capsys, monkeypatch, no_network, empty_torch_home
):
    bapps = one_subset_bapps(tmp_path / "BAPPS", photo)
    hub_before = torch.hub.get_dir()
    out = tmp_path / "results"
    results = harness.main(
        [
            *("--bapps", str(bapps), "--out", str(out), "--weights", str(tiny_dir), "--device", "cpu"),
            *("--baselines", "LPIPS-VGG", "--random-baselines", "--speed-batch-sizes"),
        ]
    )
    rows = {m["name"]: m for m in results["metrics"]}
    assert set(rows) == {"DSS-SQA", "LPIPS-VGG"}, capsys.readouterr().out
    lpips = rows["LPIPS-VGG"]
    assert lpips["label"] == f"LPIPS-VGG (piq {piq.__version__})"
    assert lpips["random_weights"] and lpips["note"].startswith("RANDOM WEIGHTS")
    assert lpips["higher_is_better"] is False, "piq's LPIPS is a distance"
    # The distance enters 2AFC as one: the less blurred p0 is picked every time.
    assert results["bapps"]["LPIPS-VGG"]["traditional"]["hard_accuracy"] == 100.0
    # The random files lived in a temporary hub: the user's cache holds nothing, and the hub
    # folder follows $TORCH_HOME again.
    assert not any(empty_torch_home.rglob("*")) and torch.hub.get_dir() == hub_before
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    assert torch.hub.get_dir() == str(tmp_path / "elsewhere" / "hub"), "not pinned to the old folder either"
    report = (out / "report.md").read_text()
    assert f"| LPIPS-VGG (piq {piq.__version__}) (RANDOM WEIGHTS: plumbing test only" in report


def test_piq_metrics_are_the_real_classes_on_random_files(tmp_path, no_network):
    with harness.random_torch_hub(tmp_path / "hub"):
        lpips, dists = piq.LPIPS(reduction="none"), piq.DISTS(reduction="none")
    assert type(lpips) is piq.LPIPS and type(dists) is piq.DISTS
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    y = (x + 0.2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    for metric in (lpips, dists):
        same, other = metric(x, x), metric(x, y)
        assert same.shape == (2,) and torch.all(same.abs() < 1e-5) and torch.all(other > same)
    assert 0 < float(dists(x, y).max()) <= 1, "DISTS weights sum to 1: a distance in [0, 1]"


def test_missing_weights_and_data_sets_are_skipped_with_one_line(
    tiny_dir, tmp_path, capsys, no_network, empty_torch_home
):
    out = tmp_path / "results"
    results = harness.main(
        [
            *("--bapps", str(tmp_path / "nowhere"), "--out", str(out), "--weights", str(tiny_dir)),
            *("--device", "cpu", "--baselines", "PSNR", "LPIPS-VGG", "--speed-batch-sizes"),
        ]
    )
    printed = capsys.readouterr().out
    assert "lovif: not given, skipped" in printed and "nowhere not found, skipped" in printed
    skipped = [line for line in printed.splitlines() if line.startswith("skipping")]
    assert len(skipped) == 1 and skipped[0].startswith("skipping LPIPS-VGG (piq): cannot build it (")
    assert "lpips_weights.pt" in skipped[0] and "--random-baselines" in skipped[0]
    assert [m["name"] for m in results["metrics"]] == ["DSS-SQA", "PSNR"] and "speed" not in results


def test_pyiqa_rows_are_an_optional_second_implementation(tiny_dir, tmp_path, photo, no_network, empty_torch_home):
    pyiqa = pytest.importorskip("pyiqa")
    bapps = one_subset_bapps(tmp_path / "BAPPS", photo)
    out = tmp_path / "results"
    results = harness.main(
        [
            *("--bapps", str(bapps), "--out", str(out), "--weights", str(tiny_dir), "--device", "cpu"),
            *("--baselines", "SSIM", "--pyiqa-baselines", "SSIM", "LPIPS-Alex", "--random-baselines"),
            "--speed-batch-sizes",
        ]
    )
    rows = {m["name"]: m for m in results["metrics"]}
    assert list(rows) == ["DSS-SQA", "SSIM", "SSIM (pyiqa)", "LPIPS-Alex (pyiqa)"]
    assert rows["SSIM (pyiqa)"]["label"] == f"SSIM (pyiqa {pyiqa.__version__})" and not rows["SSIM"]["random_weights"]
    assert rows["LPIPS-Alex (pyiqa)"]["random_weights"] and not rows["SSIM (pyiqa)"]["random_weights"]
    # Two implementations, two figures: pyiqa's SSIM works on luma, piq's on RGB.
    assert set(results["bapps"]) == set(rows)
    report = (out / "report.md").read_text()
    assert f"| SSIM (pyiqa {pyiqa.__version__}) |" in report and f"| SSIM (piq {piq.__version__}) |" in report
