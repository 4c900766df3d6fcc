"""Jobs, the report and the Ray scorer know no metric: they follow its declaration.

With `toy_darkness` (tests/toy_darkness.py: lower is better, a "floats" field, a flagged bool,
nothing of it a built-in's): the result's columns come from its declared fields, the shared
planner's counts and resume are right, the report puts its HIGHEST scores first and lists its
flagged rows, and a metric whose records differ from its declaration is refused by every
engine before anything is written.
"""

from __future__ import annotations

import csv
import html
import io
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from semantic_iqa.errors import InvalidOptionError, MetricContractError
from semantic_iqa.jobs import job_items, run_job
from semantic_iqa.registry import MetricInfo, register_metric, unregister_metric
from tests.toy_darkness import (
    DARKNESS,
    LEVELS,
    UNDECLARED,
    Darkness,
    DarknessConfig,
    Undeclared,
    expected_score,
    grey_folder,
    save_toy,
    toy_metrics,  # noqa: F401 (a fixture, used by every test here)
)

pytestmark = pytest.mark.usefixtures("toy_metrics")

COLUMNS = ["id", "image", "score", "status", "spread", "black", "c_0", "c_1", "c_2", "input_signature"]
WORST_FIRST = sorted(LEVELS, key=lambda name: -expected_score(LEVELS[name]))  # lower is better: highest first


def toy_job(root: Path, suffix: str = ".csv", **options) -> tuple[Path, dict]:
    folder = grey_folder(root / "images")
    inputs = job_items(DARKNESS, folders=[folder])
    out = root / f"scores{suffix}"
    model = Darkness(DarknessConfig())
    summary = run_job(DARKNESS, model, inputs.items, out, fingerprint="toy-1", progress=False, inputs=inputs, **options)
    return out, summary


def read_csv(out: Path) -> list[dict[str, str]]:
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_plugins_result_has_its_declared_columns_and_the_planner_counts_it(tmp_path):
    out, summary = toy_job(tmp_path)
    assert list(read_csv(out)[0]) == COLUMNS  # "floats" spread over its declared prefix, scalars first
    rows = {row["id"]: row for row in read_csv(out)}
    for name, level in LEVELS.items():
        row = rows[name]
        assert row["status"] == "ok" and float(row["score"]) == pytest.approx(expected_score(level), abs=1e-4)
        assert [float(row[f"c_{i}"]) for i in range(3)] == pytest.approx([level / 255] * 3, abs=1e-4)
        assert row["black"] == str(level / 255 < 0.2)
    assert rows["broken"]["score"] == "" and "broken.png" in rows["broken"]["status"]
    mean = statistics.mean(expected_score(level) for level in LEVELS.values())
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (5, 1, 0)
    assert summary["mean_score"] == pytest.approx(mean, abs=1e-4)

    stream = io.StringIO()
    folder = tmp_path / "images"
    inputs = job_items(DARKNESS, folders=[folder])
    again = run_job(
        DARKNESS, Darkness(DarknessConfig()), inputs.items, out, fingerprint="toy-1", progress=False, resume=True,
        stream=stream,
    )  # fmt: skip
    assert "resuming" in stream.getvalue() and "6 image(s) done already, 0 to score" in stream.getvalue()
    assert (again["ok"], again["failed"], again["skipped"]) == (5, 1, 6)
    assert again["mean_score"] == pytest.approx(mean, abs=1e-4)  # the tally of the rows read back


def test_records_that_differ_from_the_declaration_are_refused_before_anything_is_written(tmp_path):
    folder = grey_folder(tmp_path / "images")
    items = job_items(UNDECLARED, folders=[folder]).items
    out = tmp_path / "scores.parquet"
    with pytest.raises(MetricContractError, match="undeclared field.*secret"):
        run_job(UNDECLARED, Undeclared(DarknessConfig()), items, out, fingerprint="u", progress=False)
    assert not out.exists() and not Path(f"{out}.job.json").exists()


def test_prompts_for_a_metric_without_one_names_every_metric_that_takes_one(tmp_path):
    captioned = MetricInfo(
        name="toy_captioned", title="Toy", kind="NR", higher_is_better=True, score_range=(0.0, 1.0),
        summary="toy", target="tests.toy_darkness:Darkness", inputs=("image", "prompt"),
    )  # fmt: skip
    register_metric(captioned, replace=True)
    try:
        with pytest.raises(InvalidOptionError, match=r"take a prompt \(.*toy_captioned.*\), not toy_darkness"):
            job_items(DARKNESS, folders=[grey_folder(tmp_path)], prompts=tmp_path / "prompts.csv")
    finally:
        unregister_metric(captioned.name)


# -- the report --------------------------------------------------------------------------------


def test_the_report_of_a_lower_is_better_metric_puts_its_highest_scores_first(tmp_path):
    pytest.importorskip("matplotlib")
    from semantic_iqa.jobs.report import write_report

    out, summary = toy_job(tmp_path, ".parquet")
    page = write_report(
        tmp_path / "r.html", out, DARKNESS, Darkness(DarknessConfig()), summary, worst=2, method="occlusion",
        log=False,
    ).read_text(encoding="utf-8")  # fmt: skip
    assert WORST_FIRST[:2] == ["lvl010", "lvl040"]  # the data is what it should be: darkest = worst
    assert "Highest scores, and where the score was lost" in page and "lower is better" in page
    fact = r"<div class='item'><p><b>([^<]+)</b> \| score ([0-9.]+) \| spread ([0-9.]+) \| black (\w+)"
    facts = re.findall(fact, page)
    assert [name for name, *_ in facts] == WORST_FIRST[:2]
    assert re.findall(r"alt='explanation of ([^']+)'", page) == WORST_FIRST[:2]  # each with its map
    for name, score, _, black in facts:
        assert float(score) == pytest.approx(expected_score(LEVELS[name]), abs=5e-4)
        assert black == "BLACK"
    flagged = page.split("<h2>Nearly black images")[1].split("<h2>")[0]
    assert flagged.startswith(" (2)</h2>")
    listed = [html.unescape(cell) for cell in re.findall(r"<tr><td>(.*?)</td>", flagged)]
    assert listed == [name for name in WORST_FIRST if LEVELS[name] / 255 < 0.2]  # worst first, flagged only
    assert f"<th>mean score</th><td>{summary['mean_score']:.3f}</td>" in page
    assert "5 scored, 1 failed" in page and "<td>broken</td>" in page.split("Failed items")[1]


# -- the Ray scorer and engine -----------------------------------------------------------------


def test_the_ray_scorer_spreads_a_plugins_fields_and_refuses_undeclared_ones(tmp_path):
    pytest.importorskip("ray")
    from semantic_iqa.ray import PairScorer, run_ray_job

    folder = grey_folder(tmp_path / "images")
    paths = np.array([str(folder / f"{name}.png") for name in LEVELS] + [str(folder / "broken.png")])
    scorer = PairScorer(metric="toy_darkness", weights=str(save_toy(Darkness, tmp_path / "w")), device="cpu")
    table = scorer({"image": paths})
    assert table.column_names == ["image", *COLUMNS[2:-1]]
    rows = table.to_pylist()
    assert [row["score"] for row in rows[:-1]] == pytest.approx([expected_score(v) for v in LEVELS.values()], abs=1e-4)
    assert [row["black"] for row in rows[:-1]] == [v / 255 < 0.2 for v in LEVELS.values()]
    assert rows[-1]["score"] is None and rows[-1]["c_0"] is None and "broken.png" in rows[-1]["status"]
    with pytest.raises(InvalidOptionError, match="no reference-feature cache"):
        PairScorer(metric="toy_darkness", weights=str(tmp_path / "w"), device="cpu", reference_cache=4)

    undeclared = str(save_toy(Undeclared, tmp_path / "u"))
    with pytest.raises(MetricContractError, match="undeclared field.*secret"):
        PairScorer(metric="toy_undeclared", weights=undeclared, device="cpu")
    items = job_items(UNDECLARED, folders=[folder]).items
    out = tmp_path / "ray.parquet"
    with pytest.raises(MetricContractError, match="undeclared field.*secret"):  # on the driver, before Ray starts
        run_ray_job(UNDECLARED, undeclared, {}, items, out, progress=False)
    assert not out.exists() and not Path(f"{out}.job.json").exists()
