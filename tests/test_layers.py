"""The package's layers, checked by import-linter's contracts in `.importlinter`.

The first test runs `lint-imports` on the package; the second proves the contracts can fail:
in a copy of the package, each plausible layering bug (a core module importing a metric, an
upward import of the CLI, a plain `import x` circle) must break its contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with `root` as cwd and first on the path, so it analyses `root/semantic_iqa`."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: pip install -e '.[test]' (it brings import-linter)")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + "\n" + line + "\n")


def _circle(package: Path) -> str:
    # Two plain modules importing each other with `import x` (what the old hand-written test missed).
    (package / "jobs" / "circle_a.py").write_text("import semantic_iqa.jobs.circle_b\n")
    (package / "jobs" / "circle_b.py").write_text("import semantic_iqa.jobs.circle_a\n")
    return ".circle_b -> .circle_a"  # the report names the import to remove, relative to jobs


def _core_imports_metric(package: Path) -> str:
    _append(package / "preprocess.py", "from .metrics.dss_sqa import model  # noqa: F401")
    return "semantic_iqa.preprocess -> semantic_iqa.metrics.dss_sqa.model"


def _jobs_import_cli(package: Path) -> str:
    # An upward import, written as a plain `import`.
    _append(package / "jobs" / "results.py", "import semantic_iqa.cli  # noqa: F401")
    return "semantic_iqa.jobs.results -> semantic_iqa.cli"


# bug -> (inject it into a package copy and return what the report must name, the broken contracts)
BUGS = {
    "core imports a metric": (_core_imports_metric, ["Layers:", "The core never imports a metric"]),
    "jobs import the CLI": (_jobs_import_cli, ["Layers:"]),
    "a plain import circle": (_circle, ["No import cycles"]),
}


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "semantic_iqa", tmp_path / "semantic_iqa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


@pytest.mark.parametrize("bug", list(BUGS))
def test_contracts_catch_layering_bugs(package_copy: Path, bug: str):
    inject, contracts = BUGS[bug]
    culprit = inject(package_copy / "semantic_iqa")
    result = lint_imports(package_copy)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    # The expected contracts are the broken ones (each is reported under "Broken contracts"), and
    # the report names the injected import, which only the copy has: import-linter analysed the copy.
    broken = out.partition("Broken contracts")[2]
    for name in contracts:
        assert name in broken, out
    assert culprit in out, out
    assert lint_imports(ROOT).returncode == 0  # the repository itself is untouched
