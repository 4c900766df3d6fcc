"""Result files trusted no further than they can be checked: one writer at a time, damaged rows
left out and scored again, unreadable files refused in one line, options at their default,
deleted inputs, symlinked folders, and text cells safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import PAIRS
from PIL import Image

from semantic_iqa.cli import main
from semantic_iqa.errors import ResultFileError, ResultLockedError
from semantic_iqa.jobs import ResultWriter, job_items, model_fingerprint, pair_folders, read_done, run_job
from semantic_iqa.jobs.csv_table import escape_cell
from semantic_iqa.jobs.fingerprints import weights_fingerprint, weights_fingerprints
from semantic_iqa.jobs.items import image_folder
from semantic_iqa.jobs.lock import lock_path, result_lock
from semantic_iqa.jobs.report import read_result_rows
from semantic_iqa.jobs.tables import parts_dir
from semantic_iqa.weights import read_folder
from tests.test_jobs import DSS, argv, read_result, save_random, scores_by_id

# Another process in the middle of a job on a result: it holds the result's lock.
HOLD_LOCK = (
    "import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
    "print('held', flush=True); time.sleep(99)"
)


@pytest.fixture(scope="module")
def scored(pairs, tiny_dir, tmp_path_factory) -> dict:
    """The pairs job scored once by the command, as CSV and as Parquet (tests resume copies of them)."""
    root = tmp_path_factory.mktemp("scored")
    ref, dist = pairs
    for suffix in (".csv", ".parquet"):
        assert main(argv(ref, dist, root / f"results{suffix}", tiny_dir)) == 0
    return {".csv": root / "results.csv", ".parquet": root / "results.parquet"}


def copy_result(source: Path, folder: Path) -> Path:
    """A copy of a result and its sidecar in `folder` (the rows keep their input signatures)."""
    out = folder / source.name
    shutil.copy2(source, out)
    shutil.copy2(f"{source}.job.json", f"{out}.job.json")
    return out


def resume(pairs, model, weights: Path, out: Path, folders: list[Path] | None = None) -> tuple[dict, str]:
    """Resume the pairs job into `out` with the loaded model; (summary, what it printed)."""
    inputs = job_items(DSS, folders=folders or list(pairs))
    stream = io.StringIO()
    summary = run_job(
        DSS, model, inputs.items, out, resume=True, weights_folder=weights, inputs=inputs, stream=stream, progress=False
    )
    return summary, stream.getvalue()


def warning_lines(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if "warning" in line]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def lock_holder(tmp_path):
    """Start another process holding a path's lock (as a running job would); yields a starter."""
    processes = []

    def hold(path: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE)
        assert process.stdout.readline() == b"held\n"
        processes.append(process)
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


# -- one writer -----------------------------------------------------------------------------------


def test_a_second_run_on_a_result_is_refused_and_a_killed_holder_blocks_nothing(
    pairs, tiny_dir, scored, tmp_path, capsys, lock_holder
):
    ref, dist = pairs
    out = copy_result(scored[".csv"], tmp_path)
    before = out.read_bytes()
    holder = lock_holder(lock_path(out))  # a run in progress on `out`
    for option in ("--resume", "--overwrite"):
        assert main(argv(ref, dist, out, tiny_dir, option)) == 2
        error = one_line_error(capsys)
        assert str(out) in error and "another run" in error
    assert out.read_bytes() == before
    with pytest.raises(ResultLockedError):  # the Python API too, before reading anything
        with result_lock(out):
            pass

    os.kill(holder.pid, signal.SIGKILL)  # the kernel drops its lock; the lock file stays behind
    holder.wait()
    assert lock_path(out).exists()
    assert main(argv(ref, dist, out, tiny_dir, "--resume")) == 0
    assert len(scores_by_id(out)) == PAIRS


# -- damaged rows --------------------------------------------------------------------------------


def damage_csv(out: Path, lines: list[int], how: str) -> None:
    """Damage the given (1-based) lines of a CSV result the way `how` says."""
    text = out.read_text(encoding="utf-8").splitlines(keepends=True)
    header = next(csv.reader([text[0]]))
    for number in lines:
        cells = next(csv.reader([text[number - 1]]))
        if how == "fields":
            text[number - 1] = "garbage,row\n"
            continue
        if how == "quote":
            text[number - 1] = '"' + text[number - 1]  # an unbalanced quote: the old reader read on to the end
            continue
        column, value = {"score": ("score", "abc"), "nan": ("score", "nan"), "figure": ("fold_0", "x")}[how]
        cells[header.index(column)] = value
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        text[number - 1] = buffer.getvalue()
    out.write_text("".join(text), encoding="utf-8")


@pytest.mark.parametrize("how", ["fields", "quote", "score", "nan", "figure"])
def test_damaged_csv_rows_are_left_out_named_in_one_warning_and_scored_again(
    pairs, tiny_model, tiny_dir, scored, tmp_path, how
):
    whole = scores_by_id(scored[".csv"])
    out = copy_result(scored[".csv"], tmp_path)
    damage_csv(out, [4, 9], how)  # rows 3 and 8, with valid rows before, between and after
    summary, printed = resume(pairs, tiny_model, tiny_dir, out)
    warnings = warning_lines(printed)
    assert len(warnings) == 1 and "2 damaged row(s)" in warnings[0], printed
    assert "line 4 " in warnings[0] and "line 9 " in warnings[0]
    assert (summary["skipped"], summary["ok"], summary["failed"]) == (PAIRS - 2, PAIRS, 0)  # 2 scored again
    assert math.isfinite(summary["mean_score"])
    assert scores_by_id(out) == pytest.approx(whole, abs=1e-5)  # one row per id, every score right


def test_a_torn_last_line_cut_mid_character_is_still_just_cut(pairs, tiny_model, tiny_dir, scored, tmp_path):
    out = copy_result(scored[".csv"], tmp_path)
    data = out.read_bytes()
    start = data.rindex(b"\n", 0, len(data) - 1) + 1
    out.write_bytes(data[: start + 20] + "é".encode()[:1])  # a kill halfway through a two-byte character
    summary, printed = resume(pairs, tiny_model, tiny_dir, out)
    assert warning_lines(printed) == [] and summary["skipped"] == PAIRS - 1
    assert len(scores_by_id(out)) == PAIRS


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_duplicate_rows_are_counted_once_and_removed(pairs, tiny_model, tiny_dir, scored, tmp_path, suffix):
    whole = scores_by_id(scored[suffix])
    out = copy_result(scored[suffix], tmp_path)
    if suffix == ".csv":
        lines = out.read_text().splitlines(keepends=True)
        out.write_text("".join(lines + lines[2:5]))  # three rows written twice
    else:  # three rows in a part file of a run that was killed before merging them
        parts_dir(out).mkdir()
        pq.write_table(pq.read_table(out).slice(1, 3), parts_dir(out) / "part-00000000000000000001-000000.parquet")
    summary, printed = resume(pairs, tiny_model, tiny_dir, out)
    assert "3 duplicate row(s)" in printed
    assert (summary["skipped"], summary["ok"], summary["total"]) == (PAIRS, PAIRS, PAIRS)
    assert len(read_result(out)) == PAIRS and scores_by_id(out) == pytest.approx(whole, abs=1e-5)


# -- unreadable files ------------------------------------------------------------------------------


def break_file(out: Path, how: str) -> Path:
    """Damage a copied result so that it cannot be trusted as a whole; returns the file the error names."""
    if how == "csv-not-utf8":
        lines = out.read_bytes().splitlines(keepends=True)
        lines[5] = lines[5].replace(b"ok", b"\xff\xfe")
        out.write_bytes(b"".join(lines))
    elif how == "parquet-garbage":
        out.write_bytes(b"PAR1 this is not a Parquet file at all" * 10)
    elif how == "parquet-truncated":
        out.write_bytes(out.read_bytes()[:-200])
    elif how == "parquet-part-garbage":
        parts_dir(out).mkdir()
        part = parts_dir(out) / "part-00000000000000000001-000000.parquet"
        part.write_bytes(b"\x89PNG\r\n\x1a\n not a part")
        return part
    elif how == "sidecar-not-an-object":
        Path(f"{out}.job.json").write_text("[1, 2]")
    return out


@pytest.mark.parametrize(
    ("suffix", "how"),
    [
        (".csv", "csv-not-utf8"),
        (".parquet", "parquet-garbage"),
        (".parquet", "parquet-truncated"),
        (".parquet", "parquet-part-garbage"),
        (".csv", "sidecar-not-an-object"),
    ],
)
def test_an_unreadable_result_is_one_typed_line_naming_it(pairs, tiny_dir, scored, tmp_path, capsys, suffix, how):
    ref, dist = pairs
    out = copy_result(scored[suffix], tmp_path)
    named = break_file(out, how)
    before = out.read_bytes()
    assert main(argv(ref, dist, out, tiny_dir, "--resume")) == 2
    error = one_line_error(capsys)
    assert str(named) in error and "--overwrite" in error
    if how == "csv-not-utf8":
        assert "line 6 is not UTF-8" in error
    assert out.read_bytes() == before
    with pytest.raises(ResultFileError):
        read_done(out, weights_fingerprint(tiny_dir))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_binary_manifest_is_one_typed_line(tiny_dir, tmp_path, capsys, suffix):
    manifest = tmp_path / f"pairs{suffix}"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    manifest.write_bytes(buffer.getvalue())
    command = ["score-dir", "--manifest", str(manifest), "--out", str(tmp_path / "r.csv"), "--weights", str(tiny_dir)]
    assert main(command) == 2
    error = one_line_error(capsys)
    assert str(manifest) in error and "manifest" in error


# -- options at their default, deleted inputs ---------------------------------------------------------


def fingerprint_of_0_1_0(folder: Path, options: dict) -> str:
    """The fingerprint semantic-iqa 0.1.0 gave a job (options as given, `None` left out)."""
    contents = read_folder(folder)
    text = json.dumps([contents.metric, contents.settings, "fp32", options], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    for entry in [*contents.head_files, *contents.backbone_files]:
        digest.update(f"{entry['file']}={entry['sha256']}\n".encode())
    return digest.hexdigest()


def test_an_option_at_its_default_is_the_same_job(pairs, tiny_dir, tiny_model, scored, tmp_path, capsys):
    ref, dist = pairs
    out = copy_result(scored[".csv"], tmp_path)
    summary_file = tmp_path / "s.json"
    assert main(argv(ref, dist, out, tiny_dir, "--resume", "--gate", "hard", "--json", str(summary_file))) == 0
    assert json.loads(summary_file.read_text())["skipped"] == PAIRS  # the tiny weights' gate.mode is "hard"
    capsys.readouterr()
    assert main(argv(ref, dist, out, tiny_dir, "--resume", "--gate", "soft")) == 2  # another job
    assert "another model or options" in one_line_error(capsys)
    assert model_fingerprint(tiny_model, {"gate": "hard"}) == model_fingerprint(tiny_model)

    # Results written before: a default run's fingerprint is unchanged, and one of an explicit
    # `--gate hard` run (fingerprinted apart then) still resumes, with or without --gate hard.
    assert weights_fingerprint(tiny_dir) == fingerprint_of_0_1_0(tiny_dir, {})
    sidecar = Path(f"{out}.job.json")
    recorded = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**recorded, "fingerprint": fingerprint_of_0_1_0(tiny_dir, {"gate": "hard"})}))
    assert fingerprint_of_0_1_0(tiny_dir, {"gate": "hard"}) in weights_fingerprints(tiny_dir, options={"gate": "hard"})
    for gate in ([], ["--gate", "hard"]):
        assert main(argv(ref, dist, out, tiny_dir, "--resume", *gate, "--json", str(summary_file))) == 0
        assert json.loads(summary_file.read_text())["skipped"] == PAIRS


def test_rows_of_deleted_inputs_are_removed_so_file_and_summary_agree(pairs, tiny_model, tiny_dir, tmp_path):
    ref = Path(shutil.copytree(pairs[0], tmp_path / "R"))
    dist = Path(shutil.copytree(pairs[1], tmp_path / "D"))
    out = tmp_path / "results.csv"
    inputs = job_items(DSS, folders=[ref, dist])
    run_job(DSS, tiny_model, inputs.items, out, weights_folder=tiny_dir, progress=False)
    (dist / "005.jpg").unlink()
    summary, printed = resume(pairs, tiny_model, tiny_dir, out, folders=[ref, dist])
    assert summary["total"] == summary["skipped"] == PAIRS - 1
    assert "1 row(s) of items no longer in the job removed" in printed and "005" in printed
    assert sorted(scores_by_id(out)) == sorted(item["id"] for item in inputs.items if item["id"] != "005")


# -- symlinked folders -----------------------------------------------------------------------------------


def test_symlinked_subfolders_are_followed_on_both_sides_and_loops_skipped(tmp_path):
    for side in ("R", "D"):
        save_random(tmp_path / side / "a.png", seed=1)
        save_random(tmp_path / f"elsewhere-{side}" / "b.png", seed=2)
        (tmp_path / side / "linked").symlink_to(tmp_path / f"elsewhere-{side}", target_is_directory=True)
        (tmp_path / side / "linked" / "loop").symlink_to(tmp_path / side, target_is_directory=True)
    with pytest.warns(UserWarning, match=r"lead back to a folder they are in.*linked/loop"):
        paired = pair_folders(tmp_path / "R", tmp_path / "D")
    assert [item["id"] for item in paired.items] == ["a", "linked/b"]
    assert paired.items[1]["ref"] == str(tmp_path / "R" / "linked" / "b.png")
    with pytest.warns(UserWarning, match="loop"):
        assert [item["id"] for item in image_folder(tmp_path / "R")] == ["a", "linked/b"]


def test_a_warning_on_the_command_line_is_one_line(tmp_path, tiny_dir, capsys):
    for side in ("R", "D"):
        save_random(tmp_path / side / "a.png", seed=1)
        (tmp_path / side / "loop").symlink_to(tmp_path / side, target_is_directory=True)
    assert main(argv(tmp_path / "R", tmp_path / "D", tmp_path / "out.csv", tiny_dir)) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "loop" in line]
    assert len(warned) == 2 and all(line.startswith("semantic-iqa: warning: ") for line in warned), warned


# -- text cells a spreadsheet would run ----------------------------------------------------------------------

FORMULA_IDS = ["=1+2", "+1", "-1", "@SUM(1)", "'quoted", "plain"]


def test_formula_like_ids_are_escaped_in_csv_only_and_resume_still_matches_them(pairs, tiny_model, tiny_dir, tmp_path):
    ref, dist = pairs
    manifest = tmp_path / "pairs.csv"
    rows = [["id", "ref", "dist"]] + [[key, str(ref / "001.png"), str(dist / "001.jpg")] for key in FORMULA_IDS]
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    items = job_items(DSS, manifest=manifest).items
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"results{suffix}"
        run_job(DSS, tiny_model, items, out, weights_folder=tiny_dir, progress=False)
        again = run_job(DSS, tiny_model, items, out, resume=True, weights_folder=tiny_dir, progress=False)
        assert again["skipped"] == len(FORMULA_IDS)  # every id read back as it was
        assert sorted(row["id"] for row in read_result_rows(out, ["id"])) == sorted(FORMULA_IDS)
    written = [row["id"] for row in read_result(tmp_path / "results.csv")]  # the raw cells
    assert written == ["'=1+2", "'+1", "'-1", "'@SUM(1)", "''quoted", "plain"]
    assert [row["id"] for row in read_result(tmp_path / "results.parquet")] == FORMULA_IDS


def test_every_text_cell_is_escaped_numbers_are_not_and_line_breaks_survive(tmp_path):
    out = tmp_path / "r.csv"
    columns = {"id": "str", "prompt": "str", "score": "float", "status": "str", "input_signature": "str"}
    rows = [
        {"id": "\tTab", "prompt": "=HYPERLINK(x)", "score": -1.5, "status": "ok", "input_signature": "s"},
        {"id": "\rCR", "prompt": "two\nlines", "score": 2.0, "status": "-failed", "input_signature": "s"},
    ]
    with ResultWriter(out, columns, "f" * 64) as writer:
        writer.write(rows)
    raw = list(csv.reader(out.open(newline="")))[1:]
    assert raw == [["'\tTab", "'=HYPERLINK(x)", "-1.5", "ok", "s"], ["'\rCR", "two\nlines", "2.0", "'-failed", "s"]]
    assert out.read_bytes().split(b"\n")[2].startswith(b'"\'\rCR"')  # quoted: no stray line break
    assert read_done(out, "f" * 64) == {"\tTab": "s", "\rCR": "s"}
    assert escape_cell("@x") == "'@x" and escape_cell(-1.0) == -1.0 and escape_cell("a=b") == "a=b"
