"""The command line in a shell pipeline, as scripts use it: JSON on stdout for `jq`, every human
line on stderr, and exit statuses that tell success, "done but some items failed" and "not run"
apart (semantic_iqa.cli.exit_codes; docs/usage.md)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import random_rgb

from semantic_iqa.cli import exit_codes
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

CLI = Path(sys.executable).parent / "semantic-iqa"
pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    for index in range(3):
        for side, seed in (("Ref", index), ("Dist", 100 + index)):
            (root / side).mkdir(exist_ok=True)
            random_rgb(48, 40, seed=seed).save(root / side / f"{index:03d}.png")
    return root / "Ref", root / "Dist"


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` through bash with pipefail, the way a script runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_score_dir_summary_pipes_into_jq(tiny_dir, folders, tmp_path):
    ref, dist = folders
    done = shell(
        f"'{CLI}' score-dir '{ref}' '{dist}' --out results.csv --weights '{tiny_dir}' --device cpu --json - "
        "| jq -r '.ok, .failed, .mean_score'",
        tmp_path,
    )
    assert done.returncode == exit_codes.OK, done.stderr
    ok, failed, mean = done.stdout.split()
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert (ok, failed) == ("3", "0")
    assert float(mean) == pytest.approx(sum(float(row["score"]) for row in rows) / 3, abs=1e-9)
    assert "scored 3 pair(s)" in done.stderr, "the human summary line is on stderr"
    assert not (tmp_path / "-").exists(), "'-' is standard output, not a file named '-'"


def test_score_json_has_one_shape_for_full_and_no_reference(tiny_dir, folders, tmp_path):
    ref, dist = folders
    mst = build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path / "mst")
    full = shell(
        f"'{CLI}' score '{ref}/000.png' '{dist}/000.png' --weights '{tiny_dir}' --device cpu --json "
        "| jq -c '{metric, ref, dist, score: (.score | type)}'",
        tmp_path,
    )
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout) == {
        "metric": "dss_sqa", "ref": f"{ref}/000.png", "dist": f"{dist}/000.png", "score": "number"
    }  # fmt: skip
    no_reference = shell(
        f"'{CLI}' score --metric mst_clipiqa '{dist}/000.png' '{dist}/001.png' --weights '{mst}' --device cpu --json "
        "| jq -s -c 'map({metric, image, score: (.score | type)})'",
        tmp_path,
    )
    assert no_reference.returncode == 0, no_reference.stderr
    assert json.loads(no_reference.stdout) == [
        {"metric": "mst_clipiqa", "image": f"{dist}/{name}.png", "score": "number"} for name in ("000", "001")
    ]


def test_exit_statuses_tell_success_partial_failure_and_errors_apart(tiny_dir, folders, tmp_path):
    ref, dist = folders
    broken = tmp_path / "Broken"
    shutil.copytree(dist, broken)
    (broken / "001.png").write_bytes(b"not a png")
    base = f"'{CLI}' score-dir '{ref}' '{{dist}}' --weights '{tiny_dir}' --device cpu --workers 0"
    partial = shell(base.format(dist=broken) + " --out partial.csv --json - | jq -r .failed", tmp_path)
    assert (partial.returncode, partial.stdout.strip()) == (exit_codes.SOME_ITEMS_FAILED, "1"), partial.stderr
    usage = shell(base.format(dist=dist) + " --out u.csv --no-such-flag", tmp_path)
    assert usage.returncode == exit_codes.ERROR and "unrecognized arguments" in usage.stderr
    bad_input = shell(base.format(dist=tmp_path / "missing") + " --out b.csv", tmp_path)
    assert bad_input.returncode == exit_codes.ERROR and len(bad_input.stderr.strip().splitlines()) == 1
    assert len({exit_codes.OK, exit_codes.SOME_ITEMS_FAILED, exit_codes.ERROR, exit_codes.INTERRUPTED}) == 4
