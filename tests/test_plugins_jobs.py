"""The out-of-tree toy plug-ins (tests/plugin_toy) through `score-dir` (its result columns,
`--resume` after Ctrl-C, `--report`) and `explain`, with nothing metric-specific in either.

`toy_colour` is lower-is-better: its report lists the LARGEST scores as the worst, and its
explanation map is positive where its score was lost (the darker square of each distorted
image). `toy_brightness` declares a bool field with a report section (`dark`).
The toys and their fixtures: tests/plugin_toy/testing.py; the other commands: tests/test_plugins.py.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from plugin_toy.testing import (
    LEVELS,
    PATCH,
    TOYS,
    brightness_expected,
    cli,
    colour_expected,
    expected_scores,
    loaded,
    one_line_error,
)

from semantic_iqa.registry import metric_info

pytest_plugins = ["plugin_toy.testing"]  # fixtures: toy_site, toys, toy_weights, toy_data, undeclared


def result_rows(out) -> dict[str, dict[str, str]]:
    with open(out, newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def counting(monkeypatch: pytest.MonkeyPatch, name: str, sizes: list[int], stop_after: int | None = None) -> None:
    """Make toy `name` record each batch's size, and raise Ctrl-C once `stop_after` items were scored."""
    cls = metric_info(name).metric_class()
    real = cls.score_batch

    def score_batch(self, images, extras, **options):
        if stop_after is not None and sum(sizes) >= stop_after:
            raise KeyboardInterrupt
        sizes.append(len(next(iter(images.values()))))
        return real(self, images, extras, **options)

    monkeypatch.setattr(cls, "score_batch", score_batch)


@pytest.mark.parametrize("name", TOYS)
def test_score_dir_resumes_an_interrupted_job_and_reports_worst_first(
    toys, toy_weights, toy_data, tmp_path, capsys, monkeypatch, name
):
    folders = [toy_data["ref"], toy_data["dist"]] if name == "toy_colour" else [toy_data["images"]]
    out, report = tmp_path / "results.csv", tmp_path / "report.html"
    command = ["score-dir", "--metric", name, *folders, "--out", out, "--weights", toy_weights[name], "--device", "cpu"]
    command += ["--workers", 0, "--batch-size", 2]
    with monkeypatch.context() as patched:
        counting(patched, name, [], stop_after=2)
        status, _, err = cli(capsys, *command)
    assert status == 130 and "interrupted: 2 of 4 rows are saved" in err, err
    assert len(result_rows(out)) == 2

    sizes: list[int] = []
    with monkeypatch.context() as patched:
        counting(patched, name, sizes)
        status, _, err = cli(capsys, *command, "--resume")
    assert status == 0, err
    assert sum(sizes) <= 3, f"only the 2 rows left (and at most a 1-item probe) are scored again: {sizes}"
    reporting = [*command, "--resume", "--report", report, "--report-worst", 2, "--report-method", "occlusion"]
    status, _, err = cli(capsys, *reporting)  # the job is done: nothing to score, the report is written
    assert status == 0, err
    rows = result_rows(out)
    expected = expected_scores(name, loaded(name, toy_weights))
    assert {key: float(row["score"]) for key, row in rows.items()} == pytest.approx(expected, abs=1e-5)
    assert {row["status"] for row in rows.values()} == {"ok"}

    page = report.read_text(encoding="utf-8")
    higher_is_better = metric_info(name).higher_is_better
    worst = sorted(expected, key=expected.get, reverse=not higher_is_better)[:2]
    assert re.findall(r"alt='explanation of ([^']+)'", page) == worst  # lower is better: the largest first
    if name == "toy_colour":  # a "floats" field: one column per channel; the option is part of the job
        status, _, err = cli(capsys, *command, "--resume", "--pooling", "max")
        assert status == 2 and "refusing to resume" in one_line_error(err)
        gaps = colour_expected(loaded(name, toy_weights), "p3")[1]
        assert [float(rows["p3"][f"gap_{i}"]) for i in range(3)] == pytest.approx(gaps, abs=1e-6)
    else:  # a flagged bool field: its own section, listing the dark images only
        dark = {key: row["dark"] for key, row in rows.items()}
        assert dark == {"l020": "True", "l050": "True", "l128": "False", "l230": "False"}
        flagged = page.split("Images too dark to judge")[1].split("<h2>")[0]
        assert [key for key in LEVELS if f"<td>{key}</td>" in flagged] == ["l020", "l050"]
        assert "| dark yes" in page.split("explanation of l020")[0]  # the declared field beside each item


@pytest.mark.parametrize("method", ["occlusion", "gradients"])
def test_explain_maps_where_a_lower_is_better_score_was_lost(toys, toy_weights, toy_data, tmp_path, capsys, method):
    figure = tmp_path / "p3.png"
    status, out, err = cli(
        capsys, "explain", "--metric", "toy_colour", toy_data["ref"] / "p3.png", toy_data["dist"] / "p3.png",
        "--out", figure, "--weights", toy_weights["toy_colour"], "--device", "cpu", "--method", method,
        "--grid", 2, "--json",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads(out)
    assert summary["score"] == pytest.approx(colour_expected(loaded("toy_colour", toy_weights), "p3")[0], abs=1e-5)
    heat = np.load(figure.with_suffix(".npy"))
    assert heat.shape == (32, 32) and figure.exists()
    patch, elsewhere = heat[:PATCH, :PATCH], heat.copy()
    elsewhere[:PATCH, :PATCH] = 0
    # The darker square is where the distance came from: score lost there (positive), nothing elsewhere.
    assert patch.min() > 0 and np.abs(elsewhere).max() < 1e-6 * patch.max(), (patch.min(), np.abs(elsewhere).max())


def test_explain_a_no_reference_plugin(toys, toy_weights, toy_data, tmp_path, capsys):
    figure = tmp_path / "l128.png"
    status, out, err = cli(
        capsys, "explain", "--metric", "toy_brightness", toy_data["images"] / "l128.png", "--out", figure,
        "--weights", toy_weights["toy_brightness"], "--device", "cpu", "--grid", 2, "--json",
    )  # fmt: skip
    assert status == 0, err
    score, dark = brightness_expected(loaded("toy_brightness", toy_weights), "l128")
    summary = json.loads(out)
    assert summary["score"] == pytest.approx(score, abs=1e-5) and summary["dark"] is dark
    assert np.load(figure.with_suffix(".npy")).shape == (32, 32)


def test_a_job_refuses_records_that_differ_from_the_declaration(undeclared, toy_weights, toy_data, tmp_path, capsys):
    folder = toy_weights["toy_brightness"]
    result = tmp_path / "results.csv"
    command = ["score-dir", "--metric", "toy_undeclared", toy_data["images"], "--out", result, "--weights", folder]
    status, _, err = cli(capsys, *command, "--workers", 0)
    assert status == 2 and "undeclared field(s) dark" in one_line_error(err)
    assert not result.exists() or "ok" not in {row["status"] for row in result_rows(result).values()}
