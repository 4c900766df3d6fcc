"""The benchmark harness's AGIQA-3K run (benchmarks/agiqa.py via benchmarks/run.py --agiqa)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from agiqa_synthetic import make_agiqa
from scipy import stats

from semantic_iqa.metrics.mst_clipiqa.data import read_agiqa
from semantic_iqa.metrics.mst_clipiqa.recipe import reference_split
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import run as harness  # noqa: E402


@pytest.fixture(scope="module")
def agiqa(tmp_path_factory, photo) -> Path:
    return make_agiqa(tmp_path_factory.mktemp("agiqa") / "AGIQA-3K", photo)


def test_benchmark_harness_scores_agiqa_against_both_labels(agiqa, tiny_dir, tmp_path, capsys):
    model_b = build_random_mst_clipiqa("B", "tiny", seed=0)
    weights = model_b.save_pretrained(tmp_path / "tiny-b")
    out = tmp_path / "results"
    common = ["--out", str(out), "--weights", str(tiny_dir), "--device", "cpu", "--baselines", "--speed-batch-sizes"]
    results = harness.main([*common, "--agiqa", str(agiqa), "--mst-weights", str(weights)])
    run = results["agiqa"]
    assert run["metric"] == "MST-CLIPIQA variant B" and run["note"].startswith("RANDOM WEIGHTS: plumbing test only")
    validation = reference_split(24)[1]
    assert run["images"] == len(validation) == 5
    data = read_agiqa(agiqa, "mos_align")
    expected = model_b.predict([data.paths[i] for i in validation], [data.prompts[i] for i in validation]).score
    np.testing.assert_allclose(run["predictions"], expected.numpy(), atol=1e-5)
    for column in ("mos_quality", "mos_align"):
        labels = read_agiqa(agiqa, column).mos[validation]
        assert run[column]["srocc"] == pytest.approx(stats.spearmanr(run["predictions"], labels).statistic)
        assert run[column]["plcc"] == pytest.approx(stats.pearsonr(run["predictions"], labels).statistic)
    report = (out / "report.md").read_text()
    assert "## AGIQA-3K: MST-CLIPIQA variant B (RANDOM WEIGHTS" in report and "| mos_align |" in report
    if importlib.util.find_spec("matplotlib"):
        assert (out / "agiqa_scatter.png").stat().st_size > 1000

    harness.main([*common, "--agiqa", str(tmp_path / "nowhere"), "--mst-weights", str(weights)])
    harness.main([*common, "--agiqa", str(agiqa)])
    harness.main([*common, "--agiqa", str(agiqa), "--mst-weights", str(tmp_path / "no-weights")])
    printed = capsys.readouterr().out
    assert "nowhere not found, skipped" in printed and "no --mst-weights given" in printed
    assert "no-weights cannot be used" in printed
