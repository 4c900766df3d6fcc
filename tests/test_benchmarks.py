"""The benchmark harness: 2AFC and correlation formulas by hand, and the whole report on synthetic layouts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from lovif_synthetic import make_lovif
from PIL import Image, ImageFilter
from scipy import stats

from semantic_iqa.evaluation import agreement, final_score, srocc, two_afc, two_afc_hard_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import run as harness  # noqa: E402

pytest.importorskip("pyiqa")
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


def test_report_end_to_end(layouts, tiny_dir, tmp_path, capsys):
    lovif, bapps = layouts
    out = tmp_path / "results"
    results = harness.main(
        [
            "--lovif",
            str(lovif),
            "--bapps",
            str(bapps),
            "--out",
            str(out),
            "--weights",
            str(tiny_dir),
            "--device",
            "cpu",
            "--baselines",
            "SSIM",
            "PSNR",
            "--speed-batch-sizes",
            "1",
            "2",
            "--repeats",
            "1",
        ]
    )
    names = [m["name"] for m in results["metrics"]]
    assert names == ["DSS-SQA", "SSIM", "PSNR"]
    train = results["lovif"]["Train"]
    assert set(train) == set(names) and train["SSIM"]["pairs"] == 12
    assert train["SSIM"]["srocc"] > 0.5, "blur+noise labels: SSIM must rank them"
    bapps_ssim = results["bapps"]["SSIM"]
    assert set(bapps_ssim) == {*harness.BAPPS_SUBSETS, harness.OVERALL, "pooled"}
    assert bapps_ssim["traditional"]["triplets"] == 3
    # p0 is always the less blurred: SSIM picks it, and judge < 0.4 says people did too.
    assert bapps_ssim["traditional"]["hard_accuracy"] == 100.0
    assert {r["metric"] for r in results["speed"]} == {*names, "DSS-SQA, cached references"}

    report = (out / "report.md").read_text()
    assert "| SSIM | pyiqa" in report and "PLCC (logistic fit)" in report and "human (LPIPS paper)" in report
    assert "## LoViF Test: no labels; submission written" in report
    submission = (out / "submission_Test" / "predictions.csv").read_text().splitlines()
    assert submission[0] == "picture_name,Score" and len(submission) == 4
    assert "runtime per image" in (out / "submission_Test" / "readme.txt").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert saved["environment"]["packages"]["pyiqa"] and saved["environment"]["device"].startswith("cpu")
    for plot in ("lovif_Train_scatter.png", "bapps_2afc.png", "throughput.png"):
        assert (out / plot).stat().st_size > 1000


def test_missing_data_sets_are_skipped_and_random_baselines_are_marked(tiny_dir, tmp_path, capsys, monkeypatch):
    # torchvision looks for its AlexNet file in $TORCH_HOME before downloading: plant a random one.
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision.models.alexnet().state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "results"
    harness.main(
        [
            "--bapps",
            str(tmp_path / "nowhere"),
            "--out",
            str(out),
            "--weights",
            str(tiny_dir),
            "--device",
            "cpu",
            "--baselines",
            "LPIPS-Alex",
            "--random-baselines",
            "--speed-batch-sizes",
            "1",
            "--repeats",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert "lovif: not given, skipped" in printed and "nowhere not found, skipped" in printed
    report = (out / "report.md").read_text()
    assert "| LPIPS-Alex | 1 |" in report, "the random LPIPS was built and timed"
    assert "RANDOM WEIGHTS" in json.dumps(json.loads((out / "results.json").read_text())["metrics"])
