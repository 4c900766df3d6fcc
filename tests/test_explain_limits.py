"""explain on images larger than the metric's input: bounded memory, the same maps, typed limits, Ctrl-C.

Before: a 12 MP pair peaked at 6.0 GB (24 MP: 11 GB, or an allocation error with a traceback),
and Ctrl-C printed a 26-line traceback. The maps here are checked against the full-size
computation explain used to do (`attribution` on full-size copies through the model's forward).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semantic_iqa.errors import ResourceLimitError
from semantic_iqa.explanation import Explanation, explain
from semantic_iqa.explanation.attribution import integrated_gradients_map, occlusion_map
from semantic_iqa.explanation.figure import DISPLAY_MAX_SIDE, explanation_figure
from semantic_iqa.explanation.resolution import resample
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa
from tests.conftest import EXAMPLES

# Larger than the tiny models' input (224): DSS-SQA sees 224x149, MST-CLIPIQA 336x224.
HEIGHT, WIDTH = 400, 600
QUADRANT = (slice(0, HEIGHT // 2), slice(WIDTH // 2, WIDTH))  # top right: a flipped map misses it


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    photo = Image.open(EXAMPLES / "ref.png").convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def distorted(reference: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(3, HEIGHT // 2, WIDTH // 2, generator=torch.Generator().manual_seed(0))
    changed = reference.clone()
    changed[:, QUADRANT[0], QUADRANT[1]] = (changed[:, QUADRANT[0], QUADRANT[1]] + 0.1 * noise).clamp(0, 1)
    return changed


def full_size_score(model, reference: torch.Tensor, gate: str):
    """The metric on full-size copies (its own resize inside): how explain scored before."""

    def score_fn(images: torch.Tensor) -> torch.Tensor:
        return model(reference.expand(len(images), -1, -1, -1), images, gate=gate).score

    return score_fn


def test_occlusion_of_a_large_pair_is_the_full_size_occlusion(tiny_model, reference, distorted):
    result = explain(reference, distorted, model=tiny_model, method="occlusion", gate="off", grid=4)
    with torch.no_grad():
        full, score = occlusion_map(full_size_score(tiny_model, reference, "off"), distorted, reference, grid=4)
    assert result.heat.shape == (HEIGHT, WIDTH) and result.settings["resolution"] == "224x149"
    assert np.abs(full.numpy()).sum() > 0
    np.testing.assert_allclose(result.heat, full.numpy(), rtol=1e-4, atol=1e-6 * float(full.abs().max()))
    assert not result.heat[HEIGHT // 2 :].any() and not result.heat[:, : WIDTH // 2].any()


def test_gradients_of_a_large_pair_are_the_full_size_gradients(tiny_model, reference, distorted):
    result = explain(reference, distorted, model=tiny_model, method="gradients", steps=8, batch_size=4)
    full = integrated_gradients_map(
        full_size_score(tiny_model, reference, "off"), distorted, reference, steps=8, batch_size=4
    ).numpy()
    assert result.heat.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(result.heat, full, rtol=1e-3, atol=1e-4 * float(np.abs(full).max()))
    # Per pixel at the image's size: exactly 0 wherever the pixels equal the reference's.
    outside = np.ones(result.heat.shape, dtype=bool)
    outside[QUADRANT] = False
    assert not result.heat[outside].any() and result.heat[QUADRANT].any()


def test_no_reference_cells_are_scored_at_the_metric_size(reference):
    model = build_random_mst_clipiqa("A", "tiny", seed=0)
    result = explain(reference, metric="mst_clipiqa", model=model, grid=2, baseline="mean")
    assert result.heat.shape == (HEIGHT, WIDTH) and result.settings["resolution"] == "336x224"
    small = resample(reference, 336, 224)
    filled = small.clone()
    filled[:, :112, 168:] = small[:, :112, 168:].mean(dim=(1, 2), keepdim=True)  # the top-right cell, as seen
    with torch.no_grad():
        base = float(model(small[None]).score)
        gain = float(model(filled[None]).score) - base
        assert base == pytest.approx(float(model(reference[None]).score), abs=1e-5)  # the same score as the image's
    assert abs(gain) > 1e-4
    assert result.heat[QUADRANT].sum() == pytest.approx(gain, abs=1e-5)
    cell = result.heat[QUADRANT]
    assert np.all(cell == cell[0, 0])  # spread evenly over the full-size cell


def test_the_figure_draws_a_downsampled_copy():
    heat = np.zeros((1500, 3000), dtype=np.float32)
    heat[:750, 1500:] = 1e-6
    image = np.full((1500, 3000, 3), 128, dtype=np.uint8)
    explanation = Explanation(heat, image, image, "dss_sqa", "DSS-SQA", "occlusion", 3.0)
    figure = explanation_figure(explanation)
    shapes = [shown.get_array().shape[:2] for axis in figure.axes for shown in axis.get_images()]
    assert len(shapes) == 4 and all(shape == (DISPLAY_MAX_SIDE // 2, DISPLAY_MAX_SIDE) for shape in shapes)
    assert float(figure.axes[2].get_images()[1].get_array().max()) == pytest.approx(1e-6)  # the units are kept


def test_an_image_over_the_pixel_limit_is_refused_by_name(tiny_model, reference, distorted, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", HEIGHT * WIDTH - 1)
    with pytest.raises(ResourceLimitError, match=r"ref: 600x400 = 240,000 pixels.*MAX_IMAGE_PIXELS"):
        explain(reference, distorted, model=tiny_model)


def test_the_command_refuses_a_file_over_the_pixel_limit_with_one_line(tiny_dir, tmp_path, monkeypatch, capsys):
    from semantic_iqa.cli import main

    paths = []
    for name in ("ref", "dist"):
        Image.new("RGB", (WIDTH, HEIGHT), (100, 150, 200)).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    # 1.2 times the limit: PIL itself only warns (it refuses files over twice its limit).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(HEIGHT * WIDTH / 1.2))
    out = tmp_path / "map.png"
    assert main(["explain", *paths, "--out", str(out), "--weights", str(tiny_dir), "--method", "occlusion"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "ref.png" in lines[0] and "MAX_IMAGE_PIXELS" in lines[0], lines
    assert not out.exists()


# One fresh interpreter: explaining a 6 MP pair (uint8 arrays, gradients, the CPU default)
# under an address-space limit too small for it, then its peak memory without the limit.
LARGE_PAIR = """
import json, resource, sys
import numpy as np
from semantic_iqa import DSSSQA
from semantic_iqa.explanation import explain

model = DSSSQA.from_pretrained(sys.argv[1], device="cpu")
height, width = 2000, 3000
rows = np.linspace(40, 215, height, dtype=np.float32)[:, None, None]
ref = (rows + np.linspace(0, 40, width, dtype=np.float32)[None, :, None] + np.array([0, 10, 20])).astype(np.uint8)
dist = ref.copy()
noise = np.random.default_rng(0).integers(-30, 31, (height // 2, width // 2, 3))
dist[: height // 2, width // 2 :] = np.clip(dist[: height // 2, width // 2 :] + noise, 0, 255)
explain(ref[:64, :64], dist[:64, :64], model=model, method="gradients", steps=2)  # lazy imports, first kernels
report = {}
# First (before a large run leaves freed memory mapped for reuse): 64 MiB more address space only.
with open("/proc/self/status") as status:
    mapped = next(int(line.split()[1]) for line in status if line.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + 64 * 2**20, resource.RLIM_INFINITY))
try:
    explain(ref, dist, model=model, method="gradients", steps=8)
    report["error"] = None
except BaseException as exc:
    report["error"] = [type(exc).__name__, str(exc)]
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
heat = explain(ref, dist, model=model, method="gradients", steps=8).heat
report.update(grew_mib=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, shape=heat.shape)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def large_pair_run(tiny_dir: Path) -> dict:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc and limits the address space (Linux)")
    done = subprocess.run(
        [sys.executable, "-c", LARGE_PAIR, str(tiny_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_6_mp_pair_is_explained_in_bounded_memory(large_pair_run):
    # Measured: 0.3 GB more than before the call; on full-size copies it was 1.6 GB.
    assert large_pair_run["shape"] == [2000, 3000]
    assert large_pair_run["grew_mib"] < 600


def test_running_out_of_memory_is_a_typed_error(large_pair_run):
    name, message = large_pair_run["error"]
    assert name == "ResourceLimitError" and "ran out of memory" in message and "--batch-size" in message


def test_ctrl_c_in_explain_is_one_line_and_status_130(tiny_dir, tmp_path):
    """A real SIGINT to a real process, in the middle of a long explanation (a million path points)."""
    for name, colour in (("ref", (90, 120, 30)), ("dist", (95, 110, 40))):
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{name}.png")
    out = tmp_path / "map.png"
    argv = ["explain", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--out", str(out)]
    argv += ["--weights", str(tiny_dir), "--method", "gradients", "--steps", "1000000"]
    # The command's own entry point, after the slow imports, so that the signal lands in the work.
    code = "import sys, semantic_iqa.api, semantic_iqa.explanation\nfrom semantic_iqa.cli import main\n"
    code += "print('ready', flush=True)\n"
    code += "sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(3)  # loading the model or explaining
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semantic-iqa: interrupted"), stderr
    assert "nothing was written" in lines[0] and not out.exists()
