"""The metric seam, proven from outside: an out-of-tree plug-in package through the command line.

`tests/plugin_toy` is a separate package (its own pyproject.toml) declaring two metrics through
the `semantic_iqa.metrics` entry points, plus one broken entry point: `toy_colour` (full
reference, lower is better, one option `pooling`, one "floats" field) and `toy_brightness` (no
reference, higher is better in [0, 1], one flagged bool field `dark`). pip installs it into a
temporary folder (tests/plugin_toy/testing.py). Each command then runs them with nothing
metric-specific anywhere in this package: `metrics`, `make-tiny`, `train`, `score` (+ `--json`,
+ `jq`), and the bad-input errors. `score-dir` and `explain`: tests/test_plugins_jobs.py; the
adapters and the Ray engine: tests/test_plugins_adapters.py. docs/adding-a-metric.md is
written from them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from plugin_toy.testing import (
    CLI,
    LEVELS,
    TOYS,
    brightness_expected,
    cli,
    colour_expected,
    loaded,
    one_line_error,
    shell,
    toy_env,
)

import semantic_iqa
from semantic_iqa import create_metric
from semantic_iqa.errors import InvalidOptionError, MetricContractError, UnknownOptionError
from semantic_iqa.registry import metric_info, register_metric, unregister_metric

pytest_plugins = ["plugin_toy.testing"]  # fixtures: toy_site, toys, toy_weights, toy_data, undeclared


def test_metrics_lists_the_plugins_and_a_broken_one_is_one_warning(toy_site, tmp_path):
    done = subprocess.run(
        [str(CLI), "metrics"], capture_output=True, text=True, env=toy_env(toy_site), cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "FR  [0, inf], lower is better" in lines["toy_colour"]
    assert "NR  [0, 1], higher is better" in lines["toy_brightness"]
    assert {"dss_sqa", "mst_clipiqa"} <= set(lines) and "toy_broken" not in lines
    warning = done.stderr.strip().splitlines()
    assert len(warning) == 1, done.stderr  # the broken plug-in, once; nothing about the working ones
    assert warning[0].startswith("semantic-iqa: warning: metric plug-in 'toy_broken'")
    assert "semantic_iqa_toy_missing" in warning[0]


def test_building_the_parser_imports_no_plugin_model_code(toy_site):
    """`semantic-iqa --help` stays quick with a plug-in installed: its declarations are plain Python."""
    heavy = ("torch", "semantic_iqa_toy.colour", "semantic_iqa_toy.brightness")
    code = "import sys; from semantic_iqa.cli import build_parser; build_parser(); "
    code += f"print([m for m in {heavy} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=toy_env(toy_site), timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", TOYS)
def test_make_tiny_writes_the_toys_random_model(toys, tmp_path, capsys, name):
    status, out, err = cli(capsys, "make-tiny", "--metric", name, tmp_path / "tiny", "--seed", 3)
    assert status == 0, err
    made = create_metric(name, weights=out.strip(), device="cpu")
    expected = metric_info(name).build_tiny(seed=3)
    other = metric_info(name).build_tiny(seed=4)
    for (key, value), different in zip(made.state_dict().items(), other.state_dict().values(), strict=True):
        torch.testing.assert_close(value, expected.state_dict()[key], rtol=0, atol=0)
        assert not torch.equal(value, different), "the seed must matter, or equality proves nothing"


def test_make_tiny_says_when_a_metric_has_no_tiny_model(toys, tmp_path, capsys):
    register_metric(replace(metric_info("toy_brightness"), name="toy_without_tiny", tiny=None))
    try:
        status, _, err = cli(capsys, "make-tiny", "--metric", "toy_without_tiny", tmp_path / "tiny")
    finally:
        unregister_metric("toy_without_tiny")
    assert status == 2 and "toy_without_tiny has no tiny model" in one_line_error(err)
    assert not (tmp_path / "tiny").exists()


def test_train_says_when_a_metric_has_no_training_recipe(toys, toy_data, tmp_path, capsys):
    """A plug-in without a `commands` module next to its model has no `train`: one line, not a crash."""
    status, _, err = cli(
        capsys, "train", "--metric", "toy_colour", "--data", toy_data["images"], "--out", tmp_path / "w"
    )
    assert status == 2 and "toy_colour has no" in one_line_error(err)
    assert not (tmp_path / "w").exists()


def test_score_prints_each_toys_score_with_its_option(toys, toy_weights, toy_data, capsys):
    colour = loaded("toy_colour", toy_weights)
    for pooling in ("mean", "max"):
        status, out, err = cli(
            capsys, "score", "--metric", "toy_colour", toy_data["ref"] / "p2.png", toy_data["dist"] / "p2.png",
            "--weights", toy_weights["toy_colour"], "--device", "cpu", "--pooling", pooling,
        )  # fmt: skip
        assert status == 0, err
        assert float(out) == pytest.approx(colour_expected(colour, "p2", pooling)[0], abs=6e-5)
    assert colour_expected(colour, "p2", "max")[0] > 2 * colour_expected(colour, "p2")[0]  # the option matters

    brightness = loaded("toy_brightness", toy_weights)
    paths = [toy_data["images"] / f"{name}.png" for name in LEVELS]
    folder = toy_weights["toy_brightness"]
    status, out, err = cli(
        capsys, "score", "--metric", "toy_brightness", *paths, "--weights", folder, "--device", "cpu"
    )
    assert status == 0, err
    printed = [line.split("\t") for line in out.strip().splitlines()]
    assert [path for _, path in printed] == [str(path) for path in paths]
    for (score, _), name in zip(printed, LEVELS, strict=True):
        assert float(score) == pytest.approx(brightness_expected(brightness, name)[0], abs=6e-5)


def test_score_json_gives_the_declared_fields(toys, toy_weights, toy_data, capsys):
    colour = loaded("toy_colour", toy_weights)
    pair = (str(toy_data["ref"] / "p3.png"), str(toy_data["dist"] / "p3.png"))
    status, out, err = cli(
        capsys, "score", "--metric", "toy_colour", *pair, "--weights", toy_weights["toy_colour"], "--json"
    )
    assert status == 0, err
    record = json.loads(out)
    assert set(record) == {"metric", "ref", "dist", "score", "channel_gaps"}
    score, gaps = colour_expected(colour, "p3")
    assert (record["metric"], record["ref"], record["dist"]) == ("toy_colour", *pair)
    assert record["score"] == pytest.approx(score, abs=1e-5)
    assert record["channel_gaps"] == pytest.approx(gaps, abs=1e-6)

    brightness = loaded("toy_brightness", toy_weights)
    paths = [str(toy_data["images"] / f"{name}.png") for name in LEVELS]
    folder = toy_weights["toy_brightness"]
    status, out, err = cli(capsys, "score", "--metric", "toy_brightness", *paths, "--weights", folder, "--json")
    assert status == 0, err
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [set(r) for r in records] == [{"metric", "image", "score", "dark"}] * len(LEVELS)
    for record, name, path in zip(records, LEVELS, paths, strict=True):
        score, dark = brightness_expected(brightness, name)
        assert record["image"] == path and record["dark"] is dark and record["score"] == pytest.approx(score, abs=1e-5)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (.ci/run installs it)")
def test_score_json_pipes_into_jq(toy_site, toy_weights, toy_data, tmp_path):
    """stdout carries only the JSON Lines, one per image (one process: the other toy is checked above)."""
    done = shell(
        f"'{CLI}' score --metric toy_brightness '{toy_data['images']}/l020.png' '{toy_data['images']}/l230.png' "
        f"--weights '{toy_weights['toy_brightness']}' --device cpu --json | jq -s -c 'map([.metric, .dark])'",
        toy_site,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["toy_brightness", True], ["toy_brightness", False]]


# -- bad input: one typed error each, one line on the command line ------------------------------


def test_an_unknown_option_and_an_option_of_another_metric_are_typed_errors(toys, toy_weights, toy_data):
    colour, brightness = loaded("toy_colour", toy_weights), loaded("toy_brightness", toy_weights)
    pair, image = (toy_data["ref"] / "p1.png", toy_data["dist"] / "p1.png"), toy_data["images"] / "l128.png"
    with pytest.raises(UnknownOptionError, match="toy_colour has no option 'nonsense' \\(its options: pooling\\)"):
        colour.predict(*pair, nonsense=1)
    with pytest.raises(UnknownOptionError, match="gate is an option of dss_sqa"):
        colour.predict(*pair, gate="soft")
    with pytest.raises(UnknownOptionError, match="pooling is an option of toy_colour"):
        brightness.predict(image, pooling="max")
    with pytest.raises(InvalidOptionError, match="unknown pooling 'median'; choose one of mean, max"):
        colour.predict(*pair, pooling="median")
    with pytest.raises(UnknownOptionError, match="pooling is an option of toy_colour"):
        semantic_iqa.score(image, metric="toy_brightness", weights=toy_weights["toy_brightness"], pooling="max")


def test_options_of_other_metrics_on_the_command_line_are_one_line_each(toys, toy_weights, toy_data, capsys):
    image = toy_data["images"] / "l128.png"
    common = ["--weights", toy_weights["toy_brightness"], "--device", "cpu"]
    status, _, err = cli(capsys, "score", "--metric", "toy_brightness", image, *common, "--pooling", "max")
    assert status == 2 and re.search("pooling.*toy_colour|toy_colour.*pooling", one_line_error(err))
    pair = (toy_data["ref"] / "p1.png", toy_data["dist"] / "p1.png")
    colour = ["--weights", toy_weights["toy_colour"], "--device", "cpu"]
    status, _, err = cli(capsys, "score", "--metric", "toy_colour", *pair, *colour, "--gate", "soft")
    assert status == 2 and re.search("gate.*dss_sqa|dss_sqa.*gate", one_line_error(err))
    with pytest.raises(SystemExit) as usage:  # a value not among the declared choices: the parser's one line
        cli(capsys, "score", "--metric", "toy_colour", *pair, *colour, "--pooling", "median")
    err = capsys.readouterr().err.strip().splitlines()
    assert usage.value.code == 2 and len(err) == 1 and "--pooling: invalid choice: 'median'" in err[0], err
    figure = toy_data["images"].parent / "x.png"
    status, _, err = cli(
        capsys, "explain", "--metric", "toy_brightness", image, "--out", figure, *common, "--pooling", "max"
    )
    assert status == 2 and re.search("pooling.*toy_colour|toy_colour.*pooling", one_line_error(err))


def test_records_that_differ_from_the_declaration_are_a_typed_error(
    undeclared, toy_weights, toy_data, tmp_path, capsys
):
    image, folder = toy_data["images"] / "l128.png", toy_weights["toy_brightness"]
    with pytest.raises(MetricContractError, match="toy_undeclared: its records have undeclared field\\(s\\) dark"):
        semantic_iqa.score_details(image, metric="toy_undeclared", weights=folder)
    status, out, err = cli(capsys, "score", "--metric", "toy_undeclared", image, "--weights", folder, "--device", "cpu")
    assert status == 2 and out == "" and "undeclared field(s) dark" in one_line_error(err)
