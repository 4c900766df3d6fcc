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
