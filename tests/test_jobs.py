"""Scoring jobs (`semantic_iqa.jobs`, `semantic-iqa score-dir`): inputs, refusals, resume, interruptions."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PAIRS, pair_images
from PIL import Image

import semantic_iqa
from semantic_iqa.cli import main
from semantic_iqa.errors import InvalidInputError
from semantic_iqa.jobs import (
    ResultWriter,
    image_folder,
    job_items,
    model_fingerprint,
    pair_folders,
    read_done,
    read_manifest,
    run_job,
    weights_fingerprint,
)
from semantic_iqa.jobs.tables import parts_dir
from semantic_iqa.metrics.dss_sqa.tiny import make_tiny
from semantic_iqa.registry import metric_info

DSS = metric_info("dss_sqa")


def save_random(path: Path, seed: int, size: tuple[int, int] = (40, 56)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("other") / "tiny", seed=1)


def argv(ref: Path, dist: Path, out: Path, weights: Path, *options: str) -> list[str]:
    base = ["score-dir", str(ref), str(dist), "--out", str(out), "--weights", str(weights), "--device", "cpu"]
    return [*base, "--workers", "0", "--batch-size", "2", *options]


def read_result(out: Path) -> list[dict]:
    if out.suffix == ".parquet":
        return pq.read_table(out).to_pylist()
    return list(csv.DictReader(out.open(newline="")))


def scores_by_id(out: Path) -> dict[str, float]:
    rows = read_result(out)
    ids = [str(r["id"]) for r in rows]
    assert len(ids) == len(set(ids)), "a pair was written twice"
    return {str(r["id"]): float(r["score"]) for r in rows}


# -- inputs -----------------------------------------------------------------------------------


def test_folders_pair_by_relative_path_and_stem_across_extensions(tmp_path):
    ref, dist = tmp_path / "R", tmp_path / "D"
    for name in ("a.png", "sub/b.png", "sub/deep/c.bmp", "only_r.png", ".hidden.png", ".cache/x.png"):
        save_random(ref / name, seed=1)
    for name in ("a.jpg", "sub/b.webp", "sub/deep/c.PNG", "only_d.jpg", "b.jpg"):
        save_random(dist / name, seed=2)
    (dist / "notes.txt").write_text("not an image")
    paired = pair_folders(ref, dist)
    assert [item["id"] for item in paired.items] == ["a", "sub/b", "sub/deep/c"]
    assert paired.items[1] == {"id": "sub/b", "ref": str(ref / "sub/b.png"), "dist": str(dist / "sub/b.webp")}
    assert all(Path(item["ref"]).is_absolute() and Path(item["dist"]).is_absolute() for item in paired.items)
    assert (paired.only_ref, paired.only_dist) == (["only_r.png"], ["b.jpg", "only_d.jpg"])


def test_two_candidates_for_one_stem_are_refused_naming_both(tmp_path):
    save_random(tmp_path / "R" / "a.png", seed=1)
    save_random(tmp_path / "D" / "a.png", seed=1)
    save_random(tmp_path / "D" / "a.jpg", seed=1)
    with pytest.raises(InvalidInputError, match="two candidates") as caught:
        pair_folders(tmp_path / "R", tmp_path / "D")
    assert str(tmp_path / "D" / "a.png") in str(caught.value) and str(tmp_path / "D" / "a.jpg") in str(caught.value)


def test_image_folder_takes_prompts_by_name_or_agiqa_layout(tmp_path):
    save_random(tmp_path / "images" / "x.png", seed=1)
    save_random(tmp_path / "images" / "sub" / "y.jpg", seed=2)
    (tmp_path / "prompts.csv").write_text('name,prompt\nx.png,a fox\nsub/y.jpg,"a boat, at night"\n')
    items = image_folder(tmp_path / "images", tmp_path / "prompts.csv")
    assert [(i["id"], i["prompt"]) for i in items] == [("sub/y", "a boat, at night"), ("x", "a fox")]
    (tmp_path / "prompts.csv").write_text("image_name,prompt\nx.png,a fox\n")
    with pytest.raises(InvalidInputError, match="no prompt for 1 image"):
        image_folder(tmp_path / "images", tmp_path / "prompts.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_paths_are_relative_to_it(pairs, tmp_path, suffix):
    ref, dist = pairs
    manifest = tmp_path / "lists" / f"m{suffix}"
    manifest.parent.mkdir()
    rows = {
        "ref": [os.path.relpath(ref / "001.png", manifest.parent), str(ref / "city/000.png")],
        "dist": [os.path.relpath(dist / "001.jpg", manifest.parent), str(dist / "city/000.jpg")],
    }
    if suffix == ".csv":
        lines = ["ref,dist"] + [f"{r},{d}" for r, d in zip(rows["ref"], rows["dist"], strict=True)]
        manifest.write_text("\n".join(lines) + "\n")
    else:
        pq.write_table(pa.table(rows), manifest)
    items = read_manifest(manifest, DSS)
    assert items == [
        {"id": "1", "ref": str(ref / "001.png"), "dist": str(dist / "001.jpg")},
        {"id": "2", "ref": str(ref / "city/000.png"), "dist": str(dist / "city/000.jpg")},
    ]


def test_manifest_problems_are_listed_together(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,ref,dist\nx,a.png,\nx,b.png,b.jpg\ny,,c.jpg\n")
    with pytest.raises(InvalidInputError) as caught:
        read_manifest(manifest, DSS)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "row 1: empty 'dist'" in message and "row 2: duplicate id 'x'" in message and "row 3: empty 'ref'" in message
    manifest.write_text("image,prompt\na.png,a fox\n")
    with pytest.raises(InvalidInputError, match="lacks column.*ref, dist"):
        read_manifest(manifest, DSS)


def test_manifest_job_scores_like_the_folder_job(pairs, tiny_dir, tmp_path, capsys):
    ref, dist = pairs
    assert main(argv(ref, dist, tmp_path / "folders.csv", tiny_dir)) == 0
    manifest = tmp_path / "m.csv"
    by_folder = {r["id"]: r for r in read_result(tmp_path / "folders.csv")}
    lines = ["id,ref,dist"] + [f"{key},{r['ref']},{r['dist']}" for key, r in by_folder.items()]
    manifest.write_text("\n".join(lines) + "\n")
    command = ["score-dir", "--manifest", str(manifest), "--out", str(tmp_path / "m.parquet")]
    assert main([*command, "--weights", str(tiny_dir), "--device", "cpu", "--workers", "0"]) == 0, capsys.readouterr()
    by_manifest = scores_by_id(tmp_path / "m.parquet")
    assert by_manifest == pytest.approx({key: float(r["score"]) for key, r in by_folder.items()}, abs=1e-5)


# -- refusals ---------------------------------------------------------------------------------


def test_out_over_an_input_image_is_refused_and_the_image_kept(pairs, tiny_dir, capsys):
    ref, dist = pairs
    before = (ref / "001.png").read_bytes()
    assert main(argv(ref, dist, ref / "001.png", tiny_dir)) == 2
    assert main(argv(ref, dist, ref / "city" / "results.csv", tiny_dir)) == 2
    err = capsys.readouterr().err
    assert "give a .csv or .parquet" in err and "inside the input folder" in err
    assert (ref / "001.png").read_bytes() == before and not (ref / "city" / "results.csv").exists()


def test_an_existing_result_is_kept_unless_overwrite(pairs, tiny_dir, tmp_path, capsys):
    ref, dist = pairs
    out = tmp_path / "results.csv"
    out.write_text("precious\n")
    assert main(argv(ref, dist, out, tiny_dir)) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(argv(ref, dist, out, tiny_dir, "--overwrite")) == 0
    assert len(scores_by_id(out)) == PAIRS


# -- rows, failures, fingerprints -------------------------------------------------------------


def test_a_failed_row_has_an_empty_score_and_its_error(pairs, tiny_dir, tmp_path, capsys):
    ref, dist = pairs
    broken = tmp_path / "D"
    for key in ("001", "002"):
        save_random(broken / f"{key}.jpg", seed=5)
    (broken / "002.jpg").write_bytes(b"not a jpeg")
    for out in (tmp_path / "r.csv", tmp_path / "r.parquet"):
        assert main(argv(ref, broken, out, tiny_dir)) == 1  # finished, some items failed
        rows = {str(r["id"]): r for r in read_result(out)}
        assert rows["002"]["score"] in ("", None) and "cannot decode" in rows["002"]["status"]
        assert rows["001"]["status"] == "ok" and float(rows["001"]["score"]) >= 0
    assert "1 of 2 pair(s) could not be scored" in capsys.readouterr().err


def test_model_fingerprint_is_deterministic_and_tells_weights_apart(tiny_dir, other_weights):
    first = semantic_iqa.create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    again = semantic_iqa.create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    other = semantic_iqa.create_metric("dss_sqa", weights=other_weights, device="cpu")
    assert model_fingerprint(first) == model_fingerprint(again) != model_fingerprint(other)
    assert model_fingerprint(first, {"gate": "soft"}) != model_fingerprint(first, {"gate": "off"})
    by_folder = model_fingerprint(first, weights_folder=tiny_dir)
    assert by_folder == weights_fingerprint(tiny_dir) != model_fingerprint(other, weights_folder=other_weights)


# -- resume -----------------------------------------------------------------------------------


def counting_loader(monkeypatch, scored: list[int], stop_after: int | None = None) -> None:
    """Make score-dir's model count the items it scores (and raise Ctrl-C after `stop_after` batches)."""

    def load(name, weights, device, precision, compile=False):
        metric = semantic_iqa.create_metric(name, weights, device="cpu")
        real = metric.score_batch

        def score_batch(images, extras, **options):
            if stop_after is not None and len(scored) > stop_after:  # scored[0] is the column probe
                raise KeyboardInterrupt
            scored.append(next(iter(images.values())).shape[0])
            return real(images, extras, **options)

        metric.score_batch = score_batch
        return metric

    monkeypatch.setattr("semantic_iqa.cli.scoring.load_metric", load)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resume_skips_done_rows_and_scores_changed_inputs_again(pairs, photo, tiny_dir, tmp_path, monkeypatch, suffix):
    ref, dist = pairs
    dist = Path(shutil.copytree(dist, tmp_path / "D"))  # copy2: the same sizes and mtimes
    out = tmp_path / f"results{suffix}"
    assert main(argv(ref, dist, out, tiny_dir)) == 0
    first = scores_by_id(out)
    scored: list[int] = []
    counting_loader(monkeypatch, scored)
    assert main(argv(ref, dist, out, tiny_dir, "--resume")) == 0
    assert scored == [1], "only the one-image column probe: every pair was done"

    pair_images(photo, 2)[1].save(dist / "005.jpg")  # one input changes
    assert main(argv(ref, dist, out, tiny_dir, "--resume", "--json", str(tmp_path / "s.json"))) == 0
    assert scored == [1, 1, 1], "the probe, then the one changed pair"
    again = scores_by_id(out)
    assert set(again) == set(first) and again["005"] != pytest.approx(first["005"], abs=1e-4)
    assert {k: v for k, v in again.items() if k != "005"} == {k: v for k, v in first.items() if k != "005"}
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (PAIRS, 0, PAIRS - 1)


def test_resume_with_other_weights_is_refused(pairs, tiny_dir, other_weights, tmp_path, capsys):
    ref, dist = pairs
    out = tmp_path / "results.csv"
    assert main(argv(ref, dist, out, tiny_dir)) == 0
    before = out.read_bytes()
    assert main(argv(ref, dist, out, other_weights, "--resume")) == 2
    assert "refusing to resume" in capsys.readouterr().err and out.read_bytes() == before
    with pytest.raises(InvalidInputError, match="another model"):
        read_done(out, weights_fingerprint(other_weights))
    assert len(read_done(out, weights_fingerprint(tiny_dir))) == PAIRS


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ctrl_c_saves_the_rows_and_resume_finishes_the_job(pairs, tiny_dir, tmp_path, monkeypatch, capsys, suffix):
    ref, dist = pairs
    assert main(argv(ref, dist, tmp_path / "whole.csv", tiny_dir)) == 0
    whole = scores_by_id(tmp_path / "whole.csv")
    capsys.readouterr()

    out = tmp_path / f"results{suffix}"
    with monkeypatch.context() as patched:
        counting_loader(patched, [], stop_after=3)
        assert main(argv(ref, dist, out, tiny_dir)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted: 6 of 12 rows are saved" in err[0] and "Traceback" not in err[0]
    assert len(scores_by_id(out)) == 6
    hint = shlex.split(err[0].split("resume with: ")[1])
    assert hint[:2] == ["semantic-iqa", "score-dir"] and hint[-1] == "--resume"

    assert main(hint[1:]) == 0
    resumed = scores_by_id(out)
    assert resumed.keys() == whole.keys()
    assert max(abs(resumed[k] - whole[k]) for k in whole) <= 1e-5


SLOW_SCORE_DIR = """
import sys, time
from semantic_iqa.cli import main
from semantic_iqa.metrics.dss_sqa import DSSSQA
real = DSSSQA.score_batch
def slow(self, *args, **kwargs):  # so the test can kill it mid-job on any machine
    time.sleep(0.1)
    return real(self, *args, **kwargs)
DSSSQA.score_batch = slow
sys.exit(main(sys.argv[1:]))
"""


def complete_rows(out: Path) -> int:
    return max(out.read_bytes().count(b"\n") - 1, 0) if out.exists() else 0


def test_sigkill_mid_job_then_resume_scores_every_pair_once(pairs, tiny_dir, tmp_path):
    ref, dist = pairs
    assert main(argv(ref, dist, tmp_path / "whole.csv", tiny_dir)) == 0
    whole = scores_by_id(tmp_path / "whole.csv")

    out = tmp_path / "results.csv"
    command = argv(ref, dist, out, tiny_dir)
    command[command.index("--batch-size") + 1] = "1"
    process = subprocess.Popen([sys.executable, "-c", SLOW_SCORE_DIR, *command], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while complete_rows(out) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    assert 3 <= complete_rows(out) < PAIRS

    assert main([*command, "--resume"]) == 0
    resumed = scores_by_id(out)
    assert resumed.keys() == whole.keys()
    assert max(abs(resumed[k] - whole[k]) for k in whole) <= 1e-5


@pytest.mark.parametrize("kept", [25, -4], ids=["mid-row", "in-the-last-field"])
def test_a_torn_last_csv_line_is_cut_off_on_resume(pairs, tiny_dir, tmp_path, kept):
    ref, dist = pairs
    out = tmp_path / "results.csv"
    assert main(argv(ref, dist, out, tiny_dir)) == 0
    whole = scores_by_id(out)
    text = out.read_text()
    start = text.rindex("\n", 0, len(text) - 1) + 1
    out.write_text(text[: start + kept] if kept > 0 else text[:kept])  # a kill during the last write
    assert len(read_done(out, weights_fingerprint(tiny_dir))) == PAIRS - 1
    assert main(argv(ref, dist, out, tiny_dir, "--resume")) == 0
    assert scores_by_id(out) == pytest.approx(whole, abs=1e-5)


def test_parquet_parts_survive_a_kill_and_are_never_counted_twice(tmp_path):
    out = tmp_path / "r.parquet"
    columns = {"id": "str", "score": "float", "status": "str", "input_signature": "str"}
    writer = ResultWriter(out, columns, "f" * 64, part_seconds=0.0)
    writer.write([{"id": "a", "score": 1.0, "status": "ok", "input_signature": "s"}])
    writer.write([{"id": "b", "score": None, "status": "broken", "input_signature": "s"}])
    assert not out.exists() and len(list(parts_dir(out).glob("part-*"))) == 2  # killed here: parts only
    assert read_done(out, "f" * 64) == {"a": "s", "b": "s"}
    leftover = list(parts_dir(out).glob("part-*"))
    writer.close()  # merged ...
    parts_dir(out).mkdir()
    for part in leftover:  # ... and killed before the parts were removed
        pq.write_table(pa.table({"id": ["a"], "score": [1.0], "status": ["ok"], "input_signature": ["s"]}), part)
    assert read_done(out, "f" * 64) == {"a": "s", "b": "s"}
    resumed = ResultWriter(out, columns, "f" * 64, resume=True, drop={"b"})
    resumed.write([{"id": "b", "score": 2.0, "status": "ok", "input_signature": "t"}])
    resumed.close()
    assert sorted(map(tuple, (r.values() for r in pq.read_table(out).to_pylist()))) == [
        ("a", 1.0, "ok", "s"),
        ("b", 2.0, "ok", "t"),
    ]


# -- progress ---------------------------------------------------------------------------------


def test_without_a_terminal_a_log_line_reports_progress(pairs, tiny_dir, tmp_path):
    ref, dist = pairs
    inputs = job_items(DSS, folders=[ref, dist])
    metric = semantic_iqa.create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    log = io.StringIO()
    summary = run_job(DSS, metric, inputs.items, tmp_path / "r.csv", batch_size=4, log_every_s=0.0, stream=log)
    lines = log.getvalue().splitlines()
    assert summary["ok"] == PAIRS and len(lines) == PAIRS // 4
    assert lines[0].startswith("semantic-iqa: 4/12 pairs scored (33%)") and "pairs/s, ETA" in lines[0]
    assert lines[-1].endswith("0 failed")
