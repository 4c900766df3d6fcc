"""A real package: the sdist and wheel build and pass `twine check`, the wheel holds the package
only, and the wheel installed into a new virtual environment scores a pair, lets pyiqa's own
command line find the metrics without `import semantic_iqa`, and uninstalls cleanly.

The new environment takes this package from the wheel and only its dependencies (torch,
pyiqa's own dependencies, ...) from the test environment, through a path file: installing
torch again would add minutes and gigabytes and test nothing of ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLES

import semantic_iqa

ROOT = Path(__file__).resolve().parent.parent
STARTUP_FILES = {"_semantic_iqa_autoload.py", "semantic_iqa_autoload.pth"}
pyiqa = pytest.importorskip("pyiqa")


def run(*command: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    # Not from the checkout: `python -c` puts the working folder first on sys.path, and the
    # checkout's semantic_iqa/ would then shadow the installed wheel.
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=env, timeout=timeout, cwd=Path(sys.prefix)
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build requirements (setuptools) are in the test extra already.
    built = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("semantic_iqa-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new virtual environment with the wheel and pyiqa installed, dependencies from this one."""
    root = tmp_path_factory.mktemp("venv") / "env"
    assert run(sys.executable, "-m", "venv", "--without-pip", root).returncode == 0
    python = root / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (purelib / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps"]
    for requirement in (str(wheel), f"pyiqa=={pyiqa.__version__}"):
        # --ignore-installed: pyiqa is visible through the path file, but its console script is wanted here.
        done = run(*pip, "--ignore-installed", requirement)
        assert done.returncode == 0, done.stderr
    return root


def venv_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEMANTIC_IQA_", "PYTHONPATH"))}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_sdist_and_wheel_pass_twine_check(dist):
    checked = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2


def test_the_wheel_holds_the_package_and_its_data_only(wheel, dist):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {name for name in top if name.endswith(".dist-info")}
    assert top - dist_info == {"semantic_iqa", *STARTUP_FILES}, top
    assert "semantic_iqa/py.typed" in names
    assert any(name.endswith("/licenses/LICENSE") for name in names)
    record = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/RECORD").decode()
    assert all(name in record for name in STARTUP_FILES), "pip uninstall removes what RECORD lists"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert f"Version: {semantic_iqa.__version__}" in metadata and "License: Apache-2.0" in metadata
    (sdist,) = dist.glob("semantic_iqa-*.tar.gz")
    members = {Path(name).name for name in tarfile.open(sdist).getnames()}
    assert {"LICENSE", "CHANGELOG.md", "setup.py", "semantic_iqa_autoload.pth", "README.md"} <= members


def test_the_installed_wheel_scores_a_pair(venv, tiny_dir):
    done = run(
        venv / "bin" / "semantic-iqa", "score", EXAMPLES / "ref.png", EXAMPLES / "dist.png",
        "--weights", tiny_dir, "--json", env=venv_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = semantic_iqa.score(EXAMPLES / "ref.png", EXAMPLES / "dist.png", weights=tiny_dir)
    assert json.loads(done.stdout)["score"] == pytest.approx(expected, abs=1e-6)
    where = run(venv / "bin" / "python", "-c", "import semantic_iqa; print(semantic_iqa.__file__)", env=venv_env())
    assert str(venv) in where.stdout, "the package came from the wheel, not from this checkout"


def test_pyiqa_finds_the_metrics_without_import_semantic_iqa(venv, tiny_dir):
    env = venv_env(SEMANTIC_IQA_WEIGHTS=str(tiny_dir))
    listed = run(venv / "bin" / "pyiqa", "-ls", env=env)
    assert listed.returncode == 0, listed.stderr
    assert all(f"'{name}'" in listed.stdout for name in ("dss_sqa", "dss_sqa_soft", "mst_clipiqa"))
    scored = run(venv / "bin" / "pyiqa", "dss_sqa", "-t", EXAMPLES / "dist.png", "-r", EXAMPLES / "ref.png", env=env)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "'dss_sqa': {'mean'" in scored.stdout
    created = run(
        venv / "bin" / "python", "-c",
        "import pyiqa; m = pyiqa.create_metric('dss_sqa', device='cpu'); print(type(m.net).__name__)", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr[-2000:]
    assert created.stdout.strip() == "SemanticIQAFullReference"
    switched_off = run(venv / "bin" / "pyiqa", "-ls", env={**env, "SEMANTIC_IQA_PYIQA_AUTOLOAD": "0"})
    assert "'dss_sqa'" not in switched_off.stdout, "SEMANTIC_IQA_PYIQA_AUTOLOAD=0 switches the hook off"


@pytest.mark.parametrize("first", ["semantic_iqa", "pyiqa"])
def test_with_the_start_up_hook_either_import_order_registers_once(venv, first):
    """The start-up finder and the package's own import hook must not both wrap pyiqa's loader."""
    second = "pyiqa" if first == "semantic_iqa" else "semantic_iqa"
    code = (
        f"import {first}\nimport {second}\nimport sys\n"
        "assert type(pyiqa.__loader__).__name__ != '_RegisteringLoader', type(pyiqa.__loader__)\n"
        "assert type(pyiqa.__spec__.loader).__name__ != '_RegisteringLoader', type(pyiqa.__spec__.loader)\n"
        "left = [type(f).__name__ for f in sys.meta_path if 'semantic' in type(f).__module__]\n"
        "assert not left, left\n"
        "print(sorted(m for m in pyiqa.list_models() if m.startswith(('dss', 'mst'))))"
    )
    done = run(venv / "bin" / "python", "-c", code, env=venv_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['dss_sqa', 'dss_sqa_soft', 'mst_clipiqa']"


def test_the_start_up_hook_imports_nothing_heavy(venv):
    code = "import sys; print(sorted(m for m in sys.modules if 'semantic' in m or m in ('torch', 'pyiqa', 'numpy')))"
    done = run(venv / "bin" / "python", "-c", code, env=venv_env())
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() == "['_semantic_iqa_autoload']"


def test_pip_uninstall_leaves_nothing_behind(tmp_path, wheel):
    root = tmp_path / "env"
    assert run(sys.executable, "-m", "venv", "--without-pip", root).returncode == 0
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    assert run(*pip, "install", "-q", "--no-deps", wheel).returncode == 0
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    assert STARTUP_FILES <= {p.name for p in purelib.iterdir()}
    done = run(*pip, "uninstall", "-y", "semantic-iqa")
    assert done.returncode == 0, done.stderr
    left = [p.name for p in purelib.iterdir()] if purelib.exists() else []  # pip removes a folder it emptied
    assert not [name for name in left if "semantic" in name.lower()], left
    started = run(python, "-c", "import sys; print('_semantic_iqa_autoload' in sys.modules)")
    assert started.stdout.strip() == "False" and started.stderr == ""
