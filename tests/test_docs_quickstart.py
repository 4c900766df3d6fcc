"""The landing page's quickstart (docs/index.md, between `<!-- quickstart -->` markers) runs as written.

It runs in an empty folder, offline, with this interpreter's `python` and `semantic-iqa`
first on PATH, as a reader who just installed the package would run it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

INDEX = Path(__file__).resolve().parent.parent / "docs" / "index.md"
BLOCK = re.compile(r"<!-- quickstart -->\s*```bash\n(?P<code>.*?)```\s*<!-- /quickstart -->", re.S)
NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


def quickstart() -> str:
    match = BLOCK.search(INDEX.read_text(encoding="utf-8"))
    assert match, f"{INDEX}: no ```bash block between <!-- quickstart --> and <!-- /quickstart -->"
    return match.group("code")


def test_quickstart_is_short():
    lines = [line for line in quickstart().splitlines() if line.strip()]
    assert 1 <= len(lines) <= 5, lines


def test_quickstart_runs_offline_and_prints_scores(tmp_path):
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "semantic-iqa").exists(), f"no semantic-iqa console script beside {sys.executable}"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",  # no network: the tiny model must need none
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    env.pop("SEMANTIC_IQA_WEIGHTS", None)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    scores = [float(m.group(1)) for line in result.stdout.splitlines() if (m := NUMBER.match(line))]
    assert len(scores) >= 2, f"expected a score from the CLI and one from Python, got:\n{result.stdout}"
    assert all(0.0 <= s <= 5.0 for s in scores), scores
    assert max(scores) - min(scores) < 1e-3, f"the CLI and Python disagree on the same pair: {scores}"
