"""The `semantic-iqa` command end to end, and its one-line errors with exit status 2."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from PIL import ImageFilter

import semantic_iqa
from semantic_iqa.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory, photo):
    root = tmp_path_factory.mktemp("folders")
    ref, dist = root / "Ref", root / "Dist"
    ref.mkdir()
    dist.mkdir()
    for i, radius in enumerate([0, 1, 3]):
        photo.rotate(10 * i).save(ref / f"{i:06d}.png")
        photo.rotate(10 * i).filter(ImageFilter.GaussianBlur(radius)).save(dist / f"{i:06d}.png")
    photo.save(ref / "only_ref.png")
    (dist / "notes.txt").write_text("not an image")
    return ref, dist


def test_score_json(tiny_dir, folders, capsys):
    ref, dist = folders
    assert (
        main(
            [
                "score",
                str(ref / "000001.png"),
                str(dist / "000001.png"),
                "--weights",
                str(tiny_dir),
                "--device",
                "cpu",
                "--gate",
                "soft",
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert set(record) == {"metric", "ref", "dist", "score", "fold_scores", "fold_std", "cos_sim", "gated"}
    assert (record["metric"], record["ref"], record["dist"]) == (
        "dss_sqa",
        str(ref / "000001.png"),
        str(dist / "000001.png"),
    )
    expected = semantic_iqa.score(ref / "000001.png", dist / "000001.png", weights=tiny_dir, device="cpu", gate="soft")
    assert record["score"] == pytest.approx(expected, abs=1e-5)


def score_dir_argv(ref, dist, out, weights, *options: str) -> list[str]:
    return ["score-dir", str(ref), str(dist), "--out", str(out), "--weights", str(weights), "--device", "cpu", *options]


@pytest.mark.parametrize("workers", [0, 2])
def test_score_dir(tiny_dir, folders, tmp_path, capsys, workers):
    ref, dist = folders
    out, summary = tmp_path / "results.csv", tmp_path / "summary.json"
    argv = score_dir_argv(ref, dist, out, tiny_dir, "--batch-size", "2", "--workers", str(workers))
    status = main([*argv, "--json", str(summary)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "1 file(s) only in" in captured.err and "only_ref.png" in captured.err
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["000000", "000001", "000002"]
    for row in rows:
        assert (row["ref"], row["dist"]) == (str(ref / f"{row['id']}.png"), str(dist / f"{row['id']}.png"))
        expected = semantic_iqa.score(row["ref"], row["dist"], weights=tiny_dir, device="cpu")
        assert row["status"] == "ok" and float(row["score"]) == pytest.approx(expected, abs=1e-5)
        assert len([k for k in row if k.startswith("fold_") and k != "fold_std"]) == 5
        assert len(row["input_signature"].split(";")) == 2
    document = json.loads(summary.read_text())
    assert document["only_in_ref"] == ["only_ref.png"] and (document["ok"], document["failed"]) == (3, 0)
    assert document["mean_score"] == pytest.approx(sum(float(r["score"]) for r in rows) / 3, abs=1e-9)
    assert (document["metric"], document["package_version"]) == ("dss_sqa", semantic_iqa.__version__)
    assert f"scored 3 pair(s), mean score {document['mean_score']:.4f}" in captured.err
    assert captured.out == "", "stdout carries only what a program reads (--json -)"


def test_score_dir_keeps_going_past_a_corrupt_image_and_exits_1(tiny_dir, folders, tmp_path, capsys):
    ref, dist = folders
    broken = tmp_path / "Dist"
    shutil.copytree(dist, broken)
    (broken / "000001.png").write_bytes(b"garbage")
    out = tmp_path / "results.csv"
    status = main(score_dir_argv(ref, broken, out, tiny_dir, "--workers", "0"))
    err_lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert status == 1 and len(err_lines) == 1 and "1 of 3 pair(s)" in err_lines[0]  # done, not all of it
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert rows["000001"]["score"] == "" and "cannot decode" in rows["000001"]["status"]
    # The pairs around the broken one keep their own scores (the three rows' scores differ
    # by 0.1 or more; batch rounding is below 1e-6).
    for name in ("000000", "000002"):
        expected = semantic_iqa.score(ref / f"{name}.png", dist / f"{name}.png", weights=tiny_dir, device="cpu")
        assert rows[name]["status"] == "ok" and float(rows[name]["score"]) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "args,message",
    [
        (["score", "missing.png", "missing.png"], "image file not found"),
        (["score", "{ref}", "{ref}", "--device", "quantum"], "unknown device"),
        (["score", "{ref}", "{ref}", "--gate", "sometimes"], "invalid choice"),
        (["score", "{ref}", "{ref}", "--weights", "{tmp}/nothing"], "weights folder not found"),
        (["score", "{junk}", "{ref}"], "cannot decode image"),
        (["score-dir", "{tmp}/a", "{tmp}/b", "--out", "{tmp}/o.csv"], "not a folder"),
        (["score-dir", "{dirs}", "{tmp}", "--out", "{tmp}/o.csv"], "no image names in common"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{tmp}/x/o.csv"], "does not exist"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "o.csv", "--batch-size", "0"], "must be at least 1"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{tmp}/r.json"], "give a .csv or .parquet"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{ref}"], "give a .csv or .parquet"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{dirs}/results.csv"], "inside the input folder"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{tmp}/o.csv", "--json", "{tmp}/o.csv"], "would be overwritten"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{tmp}/o.csv", "--resume", "--overwrite"], "not both"),
        (["score-dir", "{dirs}", "{dirs}", "--out", "{tmp}/o.csv", "--ray-address", "x:1"], "for --engine ray"),
        (["score-dir", "--manifest", "{tmp}/m.csv", "--out", "{tmp}/m.csv"], "one of the job's input files"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_dir, folders, tmp_path, capsys, args, message):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "m.csv").write_text(f"ref,dist\n{folders[0] / '000000.png'},{folders[1] / '000000.png'}\n")
    values = {"ref": folders[0] / "000000.png", "tmp": tmp_path, "junk": tmp_path / "junk.png", "dirs": folders[0]}
    argv = [a.format(**values) for a in args]
    if argv[0] == "score" and "--weights" not in argv:
        argv += ["--weights", str(tiny_dir)]
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


# -- the command line knows no metric: flags, checks and commands from the declarations --


@pytest.fixture
def toys(tmp_path_factory):
    """The test metrics of tests/option_toy.py registered, with a weights folder each."""
    from option_toy import registered

    root = tmp_path_factory.mktemp("toys")
    with registered():
        assert main(["make-tiny", str(root / "offset"), "--metric", "toy_offset"]) == 0
        assert main(["make-tiny", str(root / "level"), "--metric", "toy_level"]) == 0
        yield {"toy_offset": root / "offset", "toy_level": root / "level"}


@pytest.fixture(scope="module")
def flat_pair(tmp_path_factory):
    """REF (grey 100) and DIST (grey 100 with its left half at 20): mean |ref - dist| = 40/255 / 2."""
    from PIL import Image

    root = tmp_path_factory.mktemp("flat")
    Image.new("RGB", (16, 16), (100, 100, 100)).save(root / "ref.png")
    dist = Image.new("RGB", (16, 16), (100, 100, 100))
    dist.paste((20, 20, 20), (0, 0, 8, 16))
    dist.save(root / "dist.png")
    return root / "ref.png", root / "dist.png"


def run(argv, capsys):
    """(status, stdout, stderr lines) of one command; argparse's usage errors included."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


def test_a_metrics_declared_options_are_flags_that_reach_it(toys, flat_pair, capsys):
    ref, dist = flat_pair
    base = ["score", ref, dist, "--metric", "toy_offset", "--weights", toys["toy_offset"], "--device", "cpu", "--json"]
    gap = 80 / 255 / 2  # (100 - 20) on half the pixels
    for flags, expected in (([], 2 * gap), (["--shift", "0.5"], 2 * gap + 0.5), (["--pooling", "max"], 2 * 80 / 255)):
        status, out, err = run([*base, *flags], capsys)
        assert status == 0, err
        record = json.loads(out)
        assert set(record) == {"metric", "ref", "dist", "score", "gap"}, "the declared fields, no more"
        assert record["score"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "metric,flags,message",
    [
        ("toy_offset", ["--gate", "soft"], "--gate is a dss_sqa option; toy_offset has no gate mode"),
        ("dss_sqa", ["--shift", "1"], "--shift is an option of toy_offset, toy_liar; dss_sqa has no shift"),
        ("toy_offset", ["--shift", "much"], "--shift: invalid float value: 'much'"),
        ("toy_offset", ["--pooling", "median"], "--pooling: invalid choice: 'median'"),
        (
            "toy_level",
            ["--prompt", "a cat"],
            "--prompt is for metrics whose inputs include a prompt: mst_clipiqa_prompt",
        ),
    ],
)
@pytest.mark.parametrize("command", ["score", "explain"])
def test_an_option_the_metric_does_not_have_is_one_line(
    toys, flat_pair, tmp_path, capsys, command, metric, flags, message
):
    images = flat_pair[:1] if metric == "toy_level" else flat_pair
    argv = [command, *images, "--metric", metric, "--weights", toys.get(metric, "nowhere"), *flags]
    if command == "explain":
        argv += ["--out", tmp_path / "map.png"]
        message = message.replace("--prompt is for metrics whose inputs include a prompt: mst_clipiqa_prompt", "")
    status, out, err = run(argv, capsys)
    assert status == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
    assert out == ""


def test_a_plugin_whose_records_differ_from_its_declaration_is_one_line(toys, flat_pair, capsys):
    ref, dist = flat_pair
    status, out, err = run(["score", ref, dist, "--metric", "toy_liar", "--weights", toys["toy_offset"]], capsys)
    assert status == 2 and len(err) == 1 and out == ""
    assert "MetricContractError" not in err[0] and "toy_liar: its records lack the declared field 'extra'" in err[0]


def test_score_of_a_no_reference_metric_from_its_declaration(toys, flat_pair, capsys):
    ref, dist = flat_pair
    status, out, err = run(["score", ref, dist, "--metric", "toy_level", "--weights", toys["toy_level"]], capsys)
    assert status == 0, err
    scores = [line.split("\t") for line in out.splitlines()]
    assert [name for _, name in scores] == [str(ref), str(dist)]
    levels = [100 / 255, (100 + 20) / 2 / 255]
    assert [float(s) for s, _ in scores] == pytest.approx([2 * level for level in levels], abs=1e-4)


def test_make_tiny_from_the_registry_entry(toys, tmp_path, capsys):
    from semantic_iqa import create_metric

    model = create_metric("toy_offset", weights=toys["toy_offset"], device="cpu")
    assert type(model).__name__ == "Offset" and model.scale.item() == 2.0
    status, _, err = run(["make-tiny", tmp_path / "none", "--metric", "toy_untiny"], capsys)
    assert status == 2 and len(err) == 1 and "toy_untiny has no tiny model" in err[0]
    assert not (tmp_path / "none").exists()
    status, _, err = run(["make-tiny", tmp_path / "b", "--variant", "B"], capsys)  # the default metric has no variant
    assert status == 2 and len(err) == 1 and "no entry of dss_sqa's class has it" in err[0], err


def test_make_tiny_variant_picks_the_entry_of_the_same_class(tmp_path):
    assert main(["make-tiny", str(tmp_path / "b"), "--metric", "mst_clipiqa", "--variant", "B"]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (config["metric"], config["variant"]) == ("mst_clipiqa", "B")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--metric", "toy_level", "--data", "d", "--out", "o"], "toy_level has no training recipe"),
        (["download", "--metric", "toy_level", "--reference-backbones"], "toy_level has no reference backbones"),
    ],
)
def test_a_metric_without_a_commands_module_is_one_line(toys, capsys, argv, message):
    status, _, err = run(argv, capsys)
    assert status == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_the_metrics_command_lists_plugins_with_their_package_and_declarations(toys, capsys):
    status, out, _ = run(["metrics", "--verbose"], capsys)
    assert status == 0
    lines = out.splitlines()
    builtin = next(line for line in lines if line.startswith("dss_sqa "))
    assert builtin.endswith(f"[semantic-iqa {semantic_iqa.__version__}]")
    toy = next(line for line in lines if line.startswith("toy_offset "))
    assert "FR  [-inf, inf], lower is better" in toy and toy.endswith("[registered at run time]")
    details = lines[lines.index(toy) + 1 : lines.index(toy) + 5]
    assert details == [
        "    inputs: ref, dist",
        "    option --shift (float): added to every score",
        "    option --pooling (str {mean, max}): mean (default) or max of the differences",
        "    field gap (float): mean absolute difference, in [0, 1]",
    ]


def test_the_resume_command_repeats_the_metrics_own_flags(toys, tmp_path):
    from semantic_iqa.cli.job_outputs import resume_command
    from semantic_iqa.cli.parser import build_parser

    argv = ["score-dir", "a", "b", "--out", "o.csv", "--metric", "toy_offset", "--shift", "0.25"]
    args = build_parser().parse_args(argv)
    assert resume_command(args) == "semantic-iqa score-dir a b --out o.csv --metric toy_offset --shift 0.25 --resume"
    args = build_parser().parse_args(["score-dir", "a", "b", "--out", "o.csv"])
    assert resume_command(args) == "semantic-iqa score-dir a b --out o.csv --resume", "the default metric is left out"


def test_a_plugin_option_named_like_a_flag_of_the_command_is_a_warning(capsys):
    from dataclasses import replace

    from option_toy import OFFSET

    from semantic_iqa.contract import MetricOption
    from semantic_iqa.registry import register_metric, unregister_metric

    register_metric(replace(OFFSET, name="toy_json", scoring_options=(MetricOption("json", bool),)))
    try:
        status, out, err = run(["metrics"], capsys)
    finally:
        unregister_metric("toy_json")
    assert status == 0 and "toy_json" in out
    warned = [line for line in err if "'json' of toy_json has no flag" in line]
    assert warned and all(line.startswith("semantic-iqa: warning:") for line in err), err
