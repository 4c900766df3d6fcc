"""Fixtures and helpers of tests/test_plugins*.py: the toy package installed out of tree, its weights and images.

The package is installed by pip into a temporary folder (never into the shared environment);
a subprocess finds it through PYTHONPATH, this process through `sys.path` and
`semantic_iqa.registry.reload_metrics`. The images are 32 x 32, the toys' own size, so
their decoding resamples nothing and every expected score below is exact arithmetic.

Registered as a pytest plugin by the test modules after they import its helpers, so pytest
cannot rewrite its asserts (each carries its own message): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from semantic_iqa import create_metric
from semantic_iqa.cli import main
from semantic_iqa.errors import PluginWarning
from semantic_iqa.registry import metric_info, register_metric, reload_metrics, unregister_metric

SOURCE = Path(__file__).parent
CLI = Path(sys.executable).parent / "semantic-iqa"
SIZE, PATCH = 32, 16  # image side; the changed top-left square of each distorted image (a quarter)
REF_COLOUR = (100, 150, 200)
DELTAS = {"p0": (0, 0, 0), "p1": (40, 0, 0), "p2": (0, 60, 30), "p3": (90, 90, 90)}  # subtracted in the patch
TOYS = ("toy_colour", "toy_brightness")
LEVELS = {"l020": 20, "l050": 50, "l128": 128, "l230": 230}  # grey images; the first two are "dark"


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy package installed by pip into a temporary folder (from a copy: pip builds in the source)."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(SOURCE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    command += ["--disable-pip-version-check", "--quiet", "--target", str(site), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return site


@pytest.fixture(scope="module")
def toys(toy_site: Path) -> Iterator[Path]:
    """The plug-ins registered in this process for the module's tests, and forgotten after them."""
    sys.path.insert(0, str(toy_site))
    with pytest.warns(PluginWarning, match="toy_broken.*No module named 'semantic_iqa_toy_missing'"):
        names = [info.name for info in reload_metrics()]
    assert {"toy_colour", "toy_brightness"} <= set(names) and "toy_broken" not in names
    yield toy_site
    sys.path.remove(str(toy_site))
    for module in [name for name in sys.modules if name.startswith("semantic_iqa_toy")]:
        del sys.modules[module]
    reload_metrics()
    from semantic_iqa.api import clear_model_cache

    clear_model_cache()
    pyiqa = sys.modules.get("pyiqa")
    if pyiqa is not None:  # pyiqa's own table, which `register()` filled: as other test modules expect it
        for name in ("toy_colour", "toy_brightness"):
            pyiqa.default_model_configs.DEFAULT_CONFIGS.pop(name, None)


@pytest.fixture(scope="module")
def toy_weights(toys: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A weights folder per toy, from its tiny builder (seed 0)."""
    root = tmp_path_factory.mktemp("toy-weights")
    return {name: metric_info(name).build_tiny(seed=0).save_pretrained(root / name) for name in TOYS}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """REF/DIST folders (a flat colour; the same with its top-left square darker) and IMAGES (flat greys)."""
    root = tmp_path_factory.mktemp("toy-data")
    for folder in ("ref", "dist", "images"):
        (root / folder).mkdir()
    for name, delta in DELTAS.items():
        Image.new("RGB", (SIZE, SIZE), REF_COLOUR).save(root / "ref" / f"{name}.png")
        dist = Image.new("RGB", (SIZE, SIZE), REF_COLOUR)
        dist.paste(tuple(c - d for c, d in zip(REF_COLOUR, delta, strict=True)), (0, 0, PATCH, PATCH))
        dist.save(root / "dist" / f"{name}.png")
    for name, level in LEVELS.items():
        Image.new("RGB", (SIZE, SIZE), (level,) * 3).save(root / "images" / f"{name}.png")
    return {name: root / name for name in ("ref", "dist", "images")}


def colour_expected(model: torch.nn.Module, name: str, pooling: str = "mean") -> tuple[float, list[float]]:
    """toy_colour's score and channel gaps of pair `name`: the patch is a quarter of the image."""
    gaps = torch.tensor(DELTAS[name], dtype=torch.float64) / 255 * (PATCH * PATCH / SIZE**2 if pooling == "mean" else 1)
    weights = F.softplus(model.channel_weights.detach().double())
    return float((gaps * weights).sum()), gaps.tolist()


def brightness_expected(model: torch.nn.Module, name: str) -> tuple[float, bool]:
    """toy_brightness's score and `dark` of grey image `name`."""
    level = LEVELS[name] / 255
    gain, bias = model.gain.detach().double(), model.bias.detach().double()
    return float(torch.sigmoid(gain * (level - 0.5) + bias)), level < 0.25


def expected_scores(metric: str, model: torch.nn.Module) -> dict[str, float]:
    """Item id -> score, for every item of `metric`'s data."""
    if metric == "toy_colour":
        return {name: colour_expected(model, name)[0] for name in DELTAS}
    return {name: brightness_expected(model, name)[0] for name in LEVELS}


def toy_env(site: Path) -> dict[str, str]:
    """Environment of a subprocess that finds the toy package (offline, one thread)."""
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def shell(command: str, site: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`command` through bash with pipefail, with the toy package on PYTHONPATH."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=cwd, env=toy_env(site),
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def undeclared(toys):
    """toy_brightness's class under an entry that declares no result field: its records do not match."""
    info = register_metric(replace(metric_info("toy_brightness"), name="toy_undeclared", result_fields=()))
    yield info
    unregister_metric(info.name)


def cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """`semantic-iqa ARGS` in this process: (status, stdout, stderr)."""
    capsys.readouterr()
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def loaded(name: str, toy_weights: dict) -> torch.nn.Module:
    return create_metric(name, weights=toy_weights[name], device="cpu")


def one_line_error(err: str) -> str:
    """The one error line on stderr (warnings aside: tests/test_plugins.py checks them)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("semantic-iqa: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("semantic-iqa: error: ") and "Traceback" not in err, err
    return lines[0]
