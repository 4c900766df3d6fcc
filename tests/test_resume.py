"""What resume keeps of a result file, row by row (`semantic_iqa.jobs.resume`), on a file written here.

tests/test_jobs.py and tests/test_job_files.py resume real jobs (kills, torn lines, duplicates,
deleted inputs) through the command line; here every rule of `scan_result` and `plan_job` meets a
row made to break exactly it, and the verdicts, counts and warnings are compared in full.
"""

from __future__ import annotations

import csv
from pathlib import Path

from semantic_iqa.jobs import ResultWriter, input_signature
from semantic_iqa.jobs.resume import DoneRow, Tally, plan_job, scan_result

FINGERPRINT = "f" * 64
COLUMNS = {
    "id": "str", "ref": "str", "score": "float", "status": "str", "input_signature": "str",
    "fold_std": "float", "gated": "bool", "cos_sim": "float",
}  # fmt: skip


def write_result(out: Path, lines: list[list[str]]) -> Path:
    """A CSV result (header and sidecar by `ResultWriter`) whose rows are `lines`, written as they are."""
    with ResultWriter(out, COLUMNS, FINGERPRINT) as writer:
        writer.write([])
    with open(out, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(lines)
    return out


def test_every_row_rule_with_its_verdict_and_reason(tmp_path):
    #      id     ref  score    status          signature fold_std gated    cos
    lines = [
        ["a", "r", "1.5", "ok", "s-a", "0.1", "True", "0.9"],  # line 2: stands (replaced below)
        ["b", "r", "", "ok", "s-b", "", "", ""],  # 3: ok but no score
        ["c", "r", "", "cannot decode c", "", "", "", ""],  # 4: a failed row stands, empty signature
        ["", "r", "2", "ok", "s", "0", "False", "0.5"],  # 5: no id
        ["d", "r", "2", "", "s", "0", "False", "0.5"],  # 6: no status
        ["e", "r", "abc", "ok", "s", "0", "False", "0.5"],  # 7: score not a number
        ["f", "r", "nan", "ok", "s", "0", "False", "0.5"],  # 8: an ok row needs a finite score
        ["g", "r", "2.0", "ok", "s", "x1", "", "0.5"],  # 9: the first bad figure is named
        ["h", "r", "2.5", "ok", "s-h", "", "False", ""],  # 10: empty figures and flags stand
        ["i", "r", "2.5", "ok", "s", "0.1", "True", "bad"],  # 11: after a flag, the bad figure
        ["j", "r", "2.5", "ok", "s", "0.1", "False", "bad"],  # 12: the same after the other flag
        ["k", "r", "2.5"],  # 13: not a well-formed row
        ["a", "r", "3.0", "ok", "s-a2", "0.2", "False", "0.8"],  # 14: a duplicate id: the last stands
    ]
    scan = scan_result(write_result(tmp_path / "r.csv", lines), FINGERPRINT)
    assert scan.total == 13 and scan.duplicates == 1
    assert scan.rejected == [
        ("line 3", "ok but no score"),
        ("line 5", "no id"),
        ("line 6", "no status"),
        ("line 7", "score 'abc' is not a number"),
        ("line 8", "score is nan"),
        ("line 9", "fold_std 'x1' is not a number"),
        ("line 11", "cos_sim 'bad' is not a number"),
        ("line 12", "cos_sim 'bad' is not a number"),
        ("line 13", "not a well-formed row"),
    ]
    assert scan.rows == {
        "a": DoneRow("s-a2", "ok", 3.0),
        "c": DoneRow("", "cannot decode c", None),
        "h": DoneRow("s-h", "ok", 2.5),
    }
    assert scan.positions["a"] > scan.positions["h"] > scan.positions["c"]


def test_the_tally_sums_ok_scores_and_keeps_the_first_error():
    tally = Tally()
    for status, score in [("ok", 1.5), ("cannot decode x", None), ("ok", 2.5), ("file not found: y", None)]:
        tally.add(status, score)
    assert (tally.ok, tally.failed, tally.mean_score, tally.first_error) == (2, 2, 2.0, "cannot decode x")
    assert Tally().mean_score is None


def items_with_files(root: Path, names: list[str]) -> list[dict[str, str]]:
    items = []
    for name in names:
        (root / f"{name}.png").write_bytes(name.encode() * 10)
        items.append({"id": name, "ref": str(root / f"{name}.png")})
    return items


def row(item: dict[str, str], score: float = 2.0, signature: str | None = None) -> list[str]:
    signature = input_signature(item, ["ref"]) if signature is None else signature
    return [item["id"], item["ref"], str(score), "ok", signature, "0.1", "False", "0.9"]


def test_the_plan_keeps_what_stands_and_says_what_it_removed(tmp_path):
    items = items_with_files(tmp_path, ["a", "b", "c", "d"])
    out = write_result(
        tmp_path / "r.csv",
        [
            row(items[0]),
            row(items[1], signature="an older file"),
            row(items[2]),
            ["gone", "x", "1.0", "ok", "s", "", "", ""],
        ]
        + [[f"bad{i}", "r", "1", "", "s", "", "", ""] for i in range(11)],  # lines 6-16: no status
    )
    plan = plan_job(out, FINGERPRINT, items, ["ref"], resume=True)
    assert plan.existing == 15 and plan.skipped == 2 and plan.changed == 1
    assert [item["id"] for item, _ in plan.todo] == ["b", "d"]  # changed, and never scored
    assert (plan.tally.ok, plan.tally.mean_score) == (2, 2.0)
    positions = scan_result(out, FINGERPRINT).positions
    assert plan.keep == {positions["a"], positions["c"]}
    named = ", ".join(f"line {line} (no status)" for line in range(6, 16))
    assert plan.warnings == [
        f"{out}: 11 damaged row(s) left out, their items scored again: {named}, ...",
        f"{out}: 1 row(s) of items no longer in the job removed (input deleted or left out): gone",
    ]


def test_a_file_that_stands_whole_is_kept_as_it_is(tmp_path):
    items = items_with_files(tmp_path, ["a", "b"])
    out = write_result(tmp_path / "r.csv", [row(items[0]), row(items[1]), ["x", "r", "1", "", "s", "", "", ""]])
    plan = plan_job(out, FINGERPRINT, items[:2], ["ref"], resume=True)
    assert plan.warnings == [f"{out}: 1 damaged row(s) left out, their items scored again: line 4 (no status)"]
    whole = plan_job(write_result(tmp_path / "whole.csv", [row(items[0]), row(items[1])]), FINGERPRINT, items,
                     ["ref"], resume=True)  # fmt: skip
    assert whole.keep is None and whole.todo == [] and whole.warnings == []
    assert plan_job(out, FINGERPRINT, items, ["ref"], resume=False).existing == 0  # without resume: all scored


def test_text_columns_of_the_metrics_declaration_are_not_figures(tmp_path):
    # A metric may declare text columns of its own (a caption, a label): "hello" is not a bad number there.
    items = items_with_files(tmp_path, ["a"])
    out = tmp_path / "r.csv"
    with ResultWriter(out, {**COLUMNS, "caption": "str"}, FINGERPRINT) as writer:
        writer.write([])
    with open(out, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow([*row(items[0]), "hello"])
    text = ["id", "ref", "status", "input_signature", "caption"]
    plan = plan_job(out, FINGERPRINT, items, ["ref"], resume=True, text=text)
    assert plan.skipped == 1 and plan.warnings == []
