"""The most common call, `score(Image.open(a), Image.open(b))`, on every Pillow our pins allow.

Pillow changed how an image opened lazily (not decoded yet) and a closed image look from
the outside (Pillow 11 turned `Image.im` into a property that asserts), and a check written
against one version took the other's lazy image for a closed one. So the same script runs
on the installed (newest) Pillow and, in a fresh interpreter, on the oldest Pillow that
setup.cfg allows, installed from the package index into a folder of its own.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent

# Every way a user passes a PIL image, and what must happen: a score, or the typed "closed" error.
SCRIPT = r"""
import json, sys
import PIL
from PIL import Image
import semantic_iqa
from semantic_iqa.errors import ImageLoadError

ref, dist, weights = sys.argv[1:4]
out = {"pillow": PIL.__version__}

def attempt(label, call):
    try:
        out[label] = float(call())
    except ImageLoadError as exc:
        out[label] = "closed" if "PIL image is closed" in str(exc) else f"other error: {exc}"

def inside_with():
    with Image.open(ref) as r, Image.open(dist) as d:
        return semantic_iqa.score(r, d, weights=weights)

with Image.open(ref) as block_ended:
    pass
loaded_then_closed = Image.open(ref)
loaded_then_closed.load()
loaded_then_closed.close()
lazy_then_closed = Image.open(ref)
lazy_then_closed.close()

attempt("paths", lambda: semantic_iqa.score(ref, dist, weights=weights))
attempt("lazy", lambda: semantic_iqa.score(Image.open(ref), Image.open(dist), weights=weights))
attempt("lazy inside with", inside_with)
attempt("with block ended", lambda: semantic_iqa.score(block_ended, dist, weights=weights))
attempt("loaded then closed", lambda: semantic_iqa.score(loaded_then_closed, dist, weights=weights))
attempt("lazy then closed", lambda: semantic_iqa.score(lazy_then_closed, dist, weights=weights))
print(json.dumps(out))
"""


def oldest_allowed_pillow() -> str:
    """The lower bound of Pillow in setup.cfg's install_requires (e.g. "9.2")."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirement = next(
        line for line in config["options"]["install_requires"].splitlines() if line.lower().startswith("pillow")
    )
    match = re.fullmatch(r"pillow\s*>=\s*([\d.]+)", requirement.strip(), re.IGNORECASE)
    assert match, f"expected a plain 'pillow>=X' pin, got {requirement!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def old_pillow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("pillow-oldest")
    version = oldest_allowed_pillow()
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--only-binary=:all:", "--target"]
    done = subprocess.run([*command, str(target), f"pillow=={version}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"could not install Pillow {version} from the package index:\n{done.stderr}"
    return target


def run_script(tiny_dir: Path, pythonpath: Path | None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if pythonpath is not None:  # ahead of the venv's site-packages: this Pillow is imported instead
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(EXAMPLES / "ref.png"), str(EXAMPLES / "dist.png"), str(tiny_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_outcomes(outcome: dict) -> None:
    score = outcome["paths"]
    assert isinstance(score, float)
    for label in ("lazy", "lazy inside with"):
        assert outcome[label] == score, f"Pillow {outcome['pillow']}: {label} -> {outcome[label]}"
    for label in ("with block ended", "loaded then closed", "lazy then closed"):
        assert outcome[label] == "closed", f"Pillow {outcome['pillow']}: {label} -> {outcome[label]}"


def test_installed_pillow(tiny_dir):
    outcome = run_script(tiny_dir, None)
    import PIL

    assert outcome["pillow"] == PIL.__version__
    check_outcomes(outcome)


def test_oldest_pillow_the_pins_allow(tiny_dir, old_pillow_dir):
    outcome = run_script(tiny_dir, old_pillow_dir)
    assert outcome["pillow"].startswith(oldest_allowed_pillow()), "the old Pillow was not the one imported"
    check_outcomes(outcome)
