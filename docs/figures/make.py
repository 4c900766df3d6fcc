"""(Re)draw every documentation figure into docs/figures/*.png.

    python docs/figures/make.py                        # every figure
    python docs/figures/make.py --only architecture gate
    python docs/figures/make.py --out /tmp/figs        # somewhere else (the tests do this)

Each figure is one small function registered in `FIGURES` under its name; it takes the
output folder and returns the paths it wrote. Nothing here needs the network or trained
weights: the architecture is drawn from the package's configuration, the gate curve is
computed by the package's own gate code on synthetic fold logits. A figure made from a
tiny random-weight model must say so in its title. The script writes only into the output
folder (by default this folder), and exits non-zero if any figure failed.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BENCHMARK_RESULTS = HERE / "data" / "benchmark_results.json"

# The checkout's package and its benchmarks/ folder, whatever the current directory is.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DPI = 150  # figures are drawn at 8 in wide: 1200 px, shown at ~800 px in the docs

Figure = Callable[[Path], list[Path]]
FIGURES: dict[str, Figure] = {}


def figure(name: str) -> Callable[[Figure], Figure]:
    """Register a figure function under `name` (what `--only` takes)."""

    def register(function: Figure) -> Figure:
        FIGURES[name] = function
        return function

    return register


def save(fig: plt.Figure, path: Path) -> Path:
    """Write `fig` as a 256-colour PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    return shrink(path, buffer)


def shrink(path: Path, source: Path | io.BytesIO | None = None) -> Path:
    """Store a PNG with a 256-colour palette: a third of the RGBA size, no visible change for plots.

    PIL writes no software or time stamp, so redrawing an unchanged figure changes no byte.
    """
    from PIL import Image  # a matplotlib dependency

    with Image.open(path if source is None else source) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
    return path


# -- architecture ---------------------------------------------------------------------

STRUCTURE_COLOUR = ("#dbe9f6", "#2b6cb0")  # fill, edge
SEMANTIC_COLOUR = ("#fde7d4", "#c05621")
NEUTRAL_COLOUR = ("#f2f2f2", "#555555")
HEAD_COLOUR = ("#e6f4ea", "#2f855a")
GATE_COLOUR = ("#fdecec", "#c53030")


def _box(ax, x, y, w, h, text, colours=NEUTRAL_COLOUR, size=10, weight="normal", title=None):
    """A rounded box with centred text, and an optional bold first line (`title`)."""
    fill, edge = colours
    ax.add_patch(
        FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=1.2", fc=fill, ec=edge, lw=1.4, zorder=1)
    )
    body_top = y + h
    if title is not None:
        ax.text(
            x + w / 2,
            y + h - 2.4,
            title,
            ha="center",
            va="center",
            fontsize=size + 0.5,
            weight="bold",
            color=edge,
            zorder=2,
        )
        body_top = y + h - 4.0
    ax.text(
        x + w / 2,
        (y + body_top) / 2,
        text,
        ha="center",
        va="center",
        fontsize=size,
        weight=weight,
        zorder=2,
        linespacing=1.4,
    )


def _arrow(ax, start, end, colour="#333333", ls="-", rad=0.0, lw=1.5):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=14,
            color=colour,
            lw=lw,
            ls=ls,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
            zorder=3,
        )
    )


@figure("architecture")
def architecture(out: Path) -> list[Path]:
    """The DSS-SQA data flow, every number taken from the package's reference configuration."""
    from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG, REFERENCE_SEMANTIC_CONFIG

    cfg = REFERENCE_CONFIG
    size = cfg.preprocess.image_size
    structure_patch = int(re.search(r"patch(\d+)", cfg.structure.name).group(1))
    clip_size, clip_patch = REFERENCE_SEMANTIC_CONFIG["image_size"], REFERENCE_SEMANTIC_CONFIG["patch_size"]
    hidden1, hidden2 = cfg.head.hidden_dims
    classes = cfg.head.num_classes
    folds = cfg.num_folds
    gate = cfg.gate

    fig = plt.figure(figsize=(8, 10.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 127.5)
    ax.set_axis_off()

    ax.text(
        50,
        124,
        "DSS-SQA: how a (reference, distorted) pair is scored",
        ha="center",
        va="center",
        fontsize=13,
        weight="bold",
    )

    # Inputs: the example pair shipped with the repository.
    examples = REPO / "examples"
    for x, name, label in ((22, "ref", "reference image"), (62, "dist", "distorted image")):
        path = examples / f"{name}.png"
        if path.is_file():
            ax.imshow(plt.imread(path), extent=(x, x + 14, 104, 118), zorder=1)
            ax.text(x + 16, 111, label, ha="left", va="center", fontsize=10.5, weight="bold")
        else:
            _box(ax, x, 104, 14, 14, label, size=9)
    _arrow(ax, (29, 103.5), (40, 99))
    _arrow(ax, (69, 103.5), (60, 99))

    _box(
        ax,
        8,
        90,
        84,
        9,
        f"resize-pad-square to {size}×{size} (longer side {size} px, black padding)\n"
        "normalise with the CLIP mean/std (both images, both streams)",
    )
    _arrow(ax, (30, 89.5), (26.5, 83))
    _arrow(ax, (70, 89.5), (73.5, 83))

    # The two frozen streams.
    _box(
        ax,
        3,
        65,
        45.5,
        18,
        f"DINOv3 ViT-B/{structure_patch} (timm)\n"
        f"{size} px: {size // structure_patch}×{size // structure_patch} patches of {structure_patch} px\n"
        f"CLS token after the final norm\n"
        f"{cfg.structure_dim}-d:  s_r, s_d",
        STRUCTURE_COLOUR,
        size=9.5,
        title="Structure stream (frozen)",
    )
    _box(
        ax,
        51.5,
        65,
        45.5,
        18,
        f"CLIP ViT-L/{clip_patch}-{clip_size} (transformers)\n"
        f"resized to {clip_size} px: {clip_size // clip_patch}×{clip_size // clip_patch} patches of {clip_patch} px\n"
        "pooler output, before the projection\n"
        f"{cfg.semantic_dim}-d:  c_r, c_d",
        SEMANTIC_COLOUR,
        size=9.5,
        title="Semantic stream (frozen)",
    )
    _arrow(ax, (25.75, 64.5), (35, 59.5))
    _arrow(ax, (74.25, 64.5), (65, 59.5))

    _box(
        ax,
        8,
        47,
        84,
        12.5,
        "s_r,  s_d,  |s_r − s_d|,  c_r,  |c_r − c_d|,  n(c_r) ⊙ n(c_d),  cos(c_r, c_d)\n"
        "(n = L2-normalised; c_d itself is not included)",
        size=9.5,
        title=f"Feature fusion: {cfg.fusion_dim}-d",
    )

    # Five cross-validated heads.
    ax.add_patch(
        FancyBboxPatch(
            (3, 29),
            87,
            15.5,
            boxstyle="round,pad=0,rounding_size=1.2",
            fc="white",
            ec=HEAD_COLOUR[1],
            lw=1.2,
            ls="--",
            zorder=0,
        )
    )
    ax.text(
        46.5,
        42,
        f"{folds} cross-validated heads, one per fold, each "
        f"{cfg.fusion_dim} → {hidden1} → {hidden2} → {classes} logits",
        ha="center",
        va="center",
        fontsize=9.5,
        weight="bold",
        color=HEAD_COLOUR[1],
    )
    width, gap = 14.6, 1.8
    start = 46.5 - (folds * width + (folds - 1) * gap) / 2
    for k in range(folds):
        _box(ax, start + k * (width + gap), 30.5, width, 8.5, f"fold {k}\n{classes} logits", HEAD_COLOUR, size=9)
    _arrow(ax, (46.5, 46.5), (46.5, 44.8))
    _arrow(ax, (46.5, 28.8), (46.5, 24.8))

    # The gate, fed by the cosine (the fusion's last column).
    _box(
        ax,
        3,
        14.5,
        87,
        10,
        f"hard (default): cos < {gate.low:g} → every fold forced to class 0, score ≈ 0\n"
        f"soft: the same, and pulled towards class 0 for {gate.low:g} ≤ cos < {gate.high:g}",
        GATE_COLOUR,
        size=9,
        title="Semantic gate on cos(c_r, c_d), on every fold's logits (evaluation only)",
    )
    ax.add_patch(
        FancyArrowPatch(
            (92, 53),
            (90.3, 19.5),
            arrowstyle="-|>",
            mutation_scale=14,
            color=GATE_COLOUR[1],
            lw=1.5,
            ls="--",
            connectionstyle="angle,angleA=0,angleB=90,rad=0",
            shrinkA=0,
            shrinkB=0,
            zorder=3,
        )
    )
    ax.text(95, 36, "cos(c_r, c_d)", rotation=90, ha="center", va="center", fontsize=9, color=GATE_COLOUR[1])
    _arrow(ax, (46.5, 14), (46.5, 11.3))

    # Ensemble.
    _box(ax, 3, 1.5, 38, 9.5, f"per fold: expected class\nΣ i·softmax(logits)_i, in 0–{classes - 1}", size=9.5)
    _arrow(ax, (41.5, 6.25), (45.5, 6.25))
    _box(
        ax,
        46,
        1.5,
        51,
        9.5,
        f"score = mean of the {folds} folds: 0–{classes - 1}, higher = better\nfold spread = their std (uncertainty)",
        NEUTRAL_COLOUR,
        size=9.5,
        weight="bold",
    )
    return [save(fig, out / "architecture.png")]


# -- the semantic gate ----------------------------------------------------------------


def _fold_logits(level: float, folds: int, classes: int):
    """Synthetic logits [F, C] of `folds` heads that agree on about `level`.

    Each fold's softmax is a discretised bell over the classes (std about one class, as a
    head trained with cross-entropy plus MSE on integer labels is), centred near `level`.
    """
    import torch

    centres = level + torch.linspace(-0.3, 0.3, folds)
    grid = torch.arange(classes, dtype=torch.float32)
    return -((grid[None, :] - centres[:, None]) ** 2) / 2.0


@figure("gate")
def gate(out: Path) -> list[Path]:
    """Score after the gate against the CLIP cosine, computed with the package's own gate."""
    import torch

    from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG
    from semantic_iqa.metrics.dss_sqa.gate import apply_gate
    from semantic_iqa.metrics.dss_sqa.heads import expected_score

    config = REFERENCE_CONFIG.gate
    folds, classes = REFERENCE_CONFIG.num_folds, REFERENCE_CONFIG.head.num_classes
    cosine = torch.linspace(0.25, 0.75, 2001)

    def ensemble(logits: torch.Tensor, mode: str) -> torch.Tensor:
        batch = logits.expand(len(cosine), -1, -1)  # the same heads' opinion at every cosine
        gated, _ = apply_gate(batch, cosine, mode, config)
        return expected_score(gated).mean(dim=1)  # mean of the folds' expected classes, as the model does

    fig, ax = plt.subplots(figsize=(8, 5.2), layout="constrained")
    ax.axvspan(cosine[0], config.low, color="#c53030", alpha=0.08, lw=0)
    ax.axvspan(config.low, config.high, color="#dd6b20", alpha=0.10, lw=0)
    for level, colour in ((4.0, "#2b6cb0"), (2.5, "#2f855a")):
        logits = _fold_logits(level, folds, classes)
        before = float(ensemble(logits, "off")[0])
        ax.plot(
            cosine,
            ensemble(logits, "off"),
            color=colour,
            lw=1.2,
            ls=":",
            label=f"heads say {before:.2f}: no gate (off)",
        )
        ax.plot(cosine, ensemble(logits, "hard"), color=colour, lw=2.2, label=f"heads say {before:.2f}: hard gate")
        ax.plot(
            cosine, ensemble(logits, "soft"), color=colour, lw=2.0, ls="--", label=f"heads say {before:.2f}: soft gate"
        )
    for x, text in ((config.low, f"low = {config.low:g}"), (config.high, f"high = {config.high:g}")):
        ax.axvline(x, color="#333333", lw=1, ls="-.")
        ax.text(x, 5.5, text, ha="center", va="center", fontsize=11, bbox={"fc": "white", "ec": "none", "pad": 1.5})
    ax.text(
        (cosine[0] + config.low) / 2,
        1.0,
        "vetoed by both gates:\nevery fold forced\nto class 0, score ≈ 0",
        ha="center",
        va="center",
        fontsize=10.5,
        color="#9b2c2c",
    )
    ax.text(
        (config.low + config.high) / 2,
        4.85,
        "soft band:\npulled\ntowards 0",
        ha="center",
        va="center",
        fontsize=10.5,
        color="#9c4221",
    )
    ax.text(0.625, 4.85, "both gates leave the heads' score", ha="center", va="center", fontsize=10.5, color="#333333")
    ax.set_xlim(float(cosine[0]), float(cosine[-1]))
    ax.set_ylim(-0.15, 5.9)
    ax.set_xlabel("CLIP cosine of the pair, cos(c_r, c_d)", fontsize=12)
    ax.set_ylabel("DSS-SQA score after the gate (0–5)", fontsize=12)
    ax.set_title(
        f"The semantic gate: score vs CLIP cosine\n(the package's gate on synthetic logits of {folds} folds; no model)",
        fontsize=12.5,
    )
    ax.legend(loc="lower right", fontsize=10, framealpha=0.95)
    ax.tick_params(labelsize=10.5)
    return [save(fig, out / "gate.png")]


# -- benchmarks -----------------------------------------------------------------------


@figure("benchmarks")
def benchmarks(out: Path) -> list[Path]:
    """The benchmark plots of the stored results, drawn by `benchmarks.plots.plot_all`."""
    if not BENCHMARK_RESULTS.is_file():
        raise FileNotFoundError(
            f"the benchmark figures need the stored results {BENCHMARK_RESULTS.relative_to(REPO)}, which does not "
            "exist: write it with `python benchmarks/make_example_results.py`"
        )
    plots_module = REPO / "benchmarks" / "plots.py"
    if not plots_module.is_file():
        raise FileNotFoundError(f"the benchmark figures need {plots_module.relative_to(REPO)}, which does not exist")
    from benchmarks.plots import plot_all

    results = json.loads(BENCHMARK_RESULTS.read_text(encoding="utf-8"))
    written = [Path(path) for path in plot_all(results, out)]
    outside = [path for path in written if out.resolve() not in path.resolve().parents]
    if outside:
        raise RuntimeError(f"benchmarks.plots.plot_all wrote outside {out}: {outside}")
    return [shrink(path) for path in written]


# -- explanation map and report (tiny random-weight model: no trained weights are published) --


def _tiny_weights(scratch: Path) -> Path:
    from semantic_iqa.metrics.dss_sqa.tiny import make_tiny

    return make_tiny(scratch / "tiny", seed=0)


def _changed_photo():
    """The example photo, and a copy whose upper-right region shows something else (a flipped crop)."""
    import numpy as np
    from PIL import Image

    photo = Image.open(REPO / "examples" / "ref.png").convert("RGB").resize((288, 192), Image.Resampling.BICUBIC)
    changed = np.asarray(photo).copy()
    changed[16:96, 176:272] = changed[96:176, 16:112][::-1]  # another part of the scene, upside down
    return photo, Image.fromarray(changed)


@figure("explain_example")
def explain_example(out: Path) -> list[Path]:
    """`semantic_iqa.explain` on a pair whose upper-right region was replaced (occlusion, 8 x 8 grid)."""
    import tempfile

    import semantic_iqa

    reference, distorted = _changed_photo()
    with tempfile.TemporaryDirectory() as scratch:
        model = semantic_iqa.load_metric("dss_sqa", _tiny_weights(Path(scratch)), device="cpu")
        explanation = semantic_iqa.explain(reference, distorted, model=model, method="occlusion", grid=8)
    fig = explanation.figure()  # its title says RANDOM WEIGHTS: the map shows the output, not a finding
    path = out / "explain_example.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, facecolor="white")
    return [shrink(path, buffer)]


@figure("report")
def report(out: Path) -> list[Path]:
    """A headless-Chromium screenshot of `score-dir --report` on six crafted pairs (tiny random model)."""
    import os
    import shutil
    import subprocess
    import tempfile

    import numpy as np
    from PIL import Image

    from semantic_iqa.cli import main as semantic_iqa_main

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    path = out / "report.png"
    if browser is None:
        if os.environ.get("CI"):
            raise FileNotFoundError("CI installs chromium (.ci/run), but none is on PATH")
        print(f"make.py: no chromium on PATH: {path.name} is left as it is", file=sys.stderr)
        return [path] if path.exists() else []
    photo, changed = _changed_photo()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        refs, dists = scratch / "reference", scratch / "distorted"
        refs.mkdir()
        dists.mkdir()
        variants = {
            "region_replaced": changed,
            "rotated": photo.rotate(4),
            "darker": Image.fromarray((np.asarray(photo) * 0.6).astype(np.uint8)),
            "flipped": photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
            "downscaled": photo.resize((96, 64)).resize(photo.size),
            "noise": Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 288, 3), dtype=np.uint8)),
        }
        for name, image in variants.items():
            photo.save(refs / f"{name}.png")
            image.save(dists / f"{name}.png")
        page = scratch / "report.html"
        argv = ["score-dir", str(refs), str(dists), "--out", str(scratch / "results.csv"), "--workers", "0"]
        argv += ["--weights", str(_tiny_weights(scratch)), "--report", str(page), "--report-worst", "2"]
        argv += ["--report-method", "occlusion"]
        if semantic_iqa_main(argv) not in (0, 2):
            raise RuntimeError("score-dir --report failed")
        shot = scratch / "report.png"
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        command += [f"--screenshot={shot}", "--window-size=1000,1500", page.as_uri()]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        return [shrink(path, io.BytesIO(shot.read_bytes()))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(FIGURES),
        metavar="NAME",
        help=f"draw only these figures ({', '.join(FIGURES)})",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: docs/figures)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or list(FIGURES):
        try:
            paths = FIGURES[name](args.out)
        except Exception as exc:  # report every figure, then fail
            print(f"make.py: figure {name!r} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        for path in paths:
            print(path)
    if failed:
        print(f"make.py: {len(failed)} figure(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
