"""DSS-SQA against SSIM, PSNR, LPIPS and DISTS on LoViF and BAPPS 2AFC, with speed, in one run.

    python benchmarks/run.py --lovif LOVIF_DIR --bapps BAPPS_DIR --out results/ [--weights W] [--device auto]
        [--agiqa AGIQA_DIR --mst-weights MST_W [--agiqa-split val|all]]

- LoViF (`--lovif`: a folder with Train/, Val/, Test/ splits, each Ref/ + Dist/ and, where
  labels exist, a score table): SROCC (tie-aware), PLCC (raw), PLCC after a 4-parameter
  logistic fit (labelled as such), Final = 0.6 SROCC + 0.4 PLCC per metric. A split without
  labels gets a challenge submission (`picture_name,Score` + readme.txt) from DSS-SQA.
- BAPPS (`--bapps`: the folder holding `2afc/val/<subset>/{ref,p0,p1,judge}`): the official
  2AFC score per subset (ties worth 0.5), the mean of the six subsets, the pooled mean, and
  hard accuracy; quality scores enter as distance -q. Published figures are shown beside ours.
- AGIQA-3K (`--agiqa`: the folder holding `data.csv` and the images): MST-CLIPIQA with the
  weights `--mst-weights` (variant from the folder), SRCC and PLCC against `mos_quality`
  (and `mos_align` for variant B), on the reference split's held-out 20 % or all images
  (see `benchmarks/agiqa.py`).
- Speed: pairs/s (median, quartiles and extremes over rounds timed with torch.utils.benchmark),
  s/image and peak memory of every metric on the same device.

Baselines come from piq, the implementation behind the published BAPPS table (piq.ssim,
piq.psnr, piq.LPIPS, piq.DISTS; its version is recorded per row); `--pyiqa-baselines` adds the
same metrics from pyiqa as extra rows named "<name> (pyiqa)". piq's LPIPS and DISTS download
their learned weights and torchvision's VGG16 through torch.hub; offline, put the files in
`$TORCH_HOME/hub/checkpoints/` (`lpips_weights.pt`, `dists_weights.pt`, `vgg16-397923af.pth`)
or a baseline that cannot be built is skipped with a line saying why. `--random-baselines`
builds the real piq classes on seeded random weights of the right shapes from a temporary
torch.hub folder (see `random_torch_hub`): for testing the plumbing only, and its rows (and
plots) are marked so. Missing data sets are skipped with a line, not a crash.

Writes OUT/report.md, OUT/results.json (every figure, the environment, the published figures,
a `random_weights` flag per row) and the plots of `benchmarks/plots.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import semantic_iqa
from semantic_iqa.devices import describe_device, resolve_device
from semantic_iqa.evaluation import agreement, logistic_plcc, two_afc, two_afc_hard_accuracy
from semantic_iqa.inputs import load_padded
from semantic_iqa.metrics.dss_sqa.data import DIST_FOLDERS, IMAGE_SUFFIXES, REF_FOLDERS, read_pairs
from semantic_iqa.reference_cache import ReferenceCache

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import agiqa  # noqa: E402

BAPPS_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
OVERALL = "overall (mean of subsets)"  # the unweighted mean of the six subsets
# Human agreement on BAPPS val 2AFC, the ceiling a metric can reach. Source: the datasets
# reference page (shared/reference/datasets.md, "Human ceiling (LPIPS paper)"), i.e. Zhang,
# Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
# Perceptual Metric", CVPR 2018 (the BAPPS paper). Only these four figures are given there.
HUMAN_2AFC = "human (LPIPS paper)"
# Published 2AFC figures (soft agreement, %) on BAPPS val, from the datasets reference page.
PUBLISHED_2AFC = {
    HUMAN_2AFC: {"traditional": 80.8, "cnn": 84.4, "superres": 73.4, "overall": 73.9},
    "SSIM (piq, DSS-SQA authors)": {
        "traditional": 58.1,
        "cnn": 78.1,
        "superres": 61.1,
        "deblur": 58.4,
        "color": 57.0,
        "frameinterp": 55.2,
        "mean of six": 61.3,
    },
    "LPIPS-VGG (piq, DSS-SQA authors)": {
        "traditional": 71.4,
        "cnn": 81.4,
        "superres": 69.0,
        "deblur": 57.3,
        "color": 58.8,
        "frameinterp": 62.7,
        "mean of six": 66.8,
    },
    "DISTS (piq, DSS-SQA authors)": {
        "traditional": 74.9,
        "cnn": 81.3,
        "superres": 69.2,
        "deblur": 59.9,
        "color": 61.5,
        "frameinterp": 62.7,
        "mean of six": 68.3,
    },
    "DSS-SQA (authors' blog)": {"traditional": 73.9, "cnn": 79.6, "superres": 65.5, "overall": 65.0},
}
# The row of ours each published figure is comparable with (same metric; piq rows: same implementation).
PUBLISHED_2AFC_METRIC = {
    "SSIM (piq, DSS-SQA authors)": "SSIM",
    "LPIPS-VGG (piq, DSS-SQA authors)": "LPIPS-VGG",
    "DISTS (piq, DSS-SQA authors)": "DISTS",
    "DSS-SQA (authors' blog)": "DSS-SQA",
}
PUBLISHED_LOVIF_TEST = {"DSS-SQA (challenge report, test)": {"srocc": 0.8503, "plcc": 0.8418, "final": 0.8469}}


RANDOM_NOTE = "RANDOM WEIGHTS: plumbing test only, not a figure"


@dataclass
class BenchMetric:
    """A metric under test: `score(ref, dist)` takes paths and returns one number per pair.

    `name` is the stable key of its rows in results.json (piq rows: plain names; pyiqa rows:
    "<name> (pyiqa)"); `label` names the implementation and its version, for tables and plots.
    """

    name: str
    label: str
    implementation: str
    higher_is_better: bool
    score: Callable[[list[Path], list[Path]], np.ndarray]
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    random_weights: bool = False
    model: semantic_iqa.DSSSQA | None = None  # DSS-SQA's own model, for the cached-reference speed row

    @property
    def note(self) -> str:
        return RANDOM_NOTE if self.random_weights else ""

    def quality(self, ref: list[Path], dist: list[Path]) -> np.ndarray:
        """Scores oriented so that higher = more similar / better, for correlations and 2AFC."""
        values = self.score(ref, dist)
        return values if self.higher_is_better else -values

    def summary(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "implementation": self.implementation,
            "higher_is_better": self.higher_is_better,
            "random_weights": self.random_weights,
            "note": self.note,
        }


def dss_sqa_metric(weights: str | None, device: torch.device, batch_size: int) -> BenchMetric:
    model = semantic_iqa.DSSSQA.from_pretrained(weights, device=device)

    def score(ref: list[Path], dist: list[Path]) -> np.ndarray:
        return model.predict(ref, dist, batch_size=batch_size).score.float().cpu().numpy()

    def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return model(ref, dist).score

    version = importlib.metadata.version("semantic-iqa")
    # Test models (make-tiny) say in their provenance that their weights are random.
    random = "random" in str(model.config.provenance.get("note", ""))
    implementation = f"semantic-iqa {version} ({weights or 'published weights'})"
    return BenchMetric(
        "DSS-SQA", f"DSS-SQA (semantic-iqa {version})", implementation, True, score, score_tensors, random, model
    )


# -- baselines: piq (the implementation behind the published table), pyiqa optionally -------
PIQ_BASELINES = ("SSIM", "PSNR", "LPIPS-VGG", "DISTS")
PYIQA_BASELINES = {"SSIM": "ssim", "PSNR": "psnr", "LPIPS-Alex": "lpips", "LPIPS-VGG": "lpips-vgg", "DISTS": "dists"}


def piq_metric(name: str, device: torch.device, batch_size: int, random_weights: bool) -> BenchMetric:
    """SSIM, PSNR, LPIPS-VGG or DISTS from piq, on RGB images in [0, 1] (`data_range=1.0`).

    piq.ssim and piq.psnr are similarities (higher = better); piq.LPIPS and piq.DISTS are
    distances (lower = better; piq's DISTS returns 1 - the DISTS similarity). With
    `random_weights` the learned layers and the VGG16 backbone are random (see
    `random_torch_hub`), which only LPIPS and DISTS have.
    """
    import piq

    version = piq.__version__
    weighted = name in ("LPIPS-VGG", "DISTS")
    if name == "SSIM":
        settings = "piq.ssim(data_range=1.0, reduction='none'), RGB, default 11 px Gaussian window, downsample=True"

        def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
            return piq.ssim(dist, ref, data_range=1.0, reduction="none")

    elif name == "PSNR":
        settings = "piq.psnr(data_range=1.0, reduction='none'), RGB"

        def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
            return piq.psnr(dist, ref, data_range=1.0, reduction="none")

    elif weighted:
        cls = piq.LPIPS if name == "LPIPS-VGG" else piq.DISTS
        settings = f"piq.{cls.__name__}(reduction='none'), VGG16, ImageNet mean/std"
        if random_weights:
            with tempfile.TemporaryDirectory() as hub, random_torch_hub(Path(hub)):
                module = cls(reduction="none")
        else:
            module = cls(reduction="none")
        module = module.to(device).eval()

        def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
            return module(dist, ref)

    else:
        raise ValueError(f"piq has no baseline {name!r} here; choose from {PIQ_BASELINES}")
    random = weighted and random_weights
    higher_is_better = not weighted
    return BenchMetric(
        name,
        f"{name} (piq {version})",
        f"piq {version}: {settings}",
        higher_is_better,
        partial(_score_paths, score_tensors, batch_size=batch_size, device=device),
        score_tensors,
        random,
    )


def pyiqa_metric(name: str, device: torch.device, batch_size: int, random_weights: bool) -> BenchMetric:
    """The same baselines from pyiqa (a second implementation; its SSIM works on the Y channel)."""
    import pyiqa

    options = {}
    if random_weights and name.startswith("LPIPS"):
        options = {"pretrained": False}  # random layer weights (pyiqa's own switch)
    if options:
        with tempfile.TemporaryDirectory() as hub, random_torch_hub(Path(hub)):  # a random backbone too
            metric = pyiqa.create_metric(PYIQA_BASELINES[name], device=device, **options)
    else:
        metric = pyiqa.create_metric(PYIQA_BASELINES[name], device=device)

    def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return metric(dist.to(device), ref.to(device)).flatten()

    return BenchMetric(
        f"{name} (pyiqa)",
        f"{name} (pyiqa {pyiqa.__version__})",
        f"pyiqa {pyiqa.__version__} '{PYIQA_BASELINES[name]}'",
        not metric.lower_better,
        partial(_score_paths, score_tensors, batch_size=batch_size, device=device),
        score_tensors,
        bool(options),
    )


@contextlib.contextmanager
def random_torch_hub(directory: Path) -> Iterator[Path]:
    """Point torch.hub at `directory`, filled with randomly initialised weight files, for a while.

    piq's LPIPS and DISTS fetch their learned layer weights with
    `torch.hub.load_state_dict_from_url` (files `lpips_weights.pt`, `dists_weights.pt`) and their
    backbone with torchvision's `vgg16(pretrained=True)` (`vgg16-397923af.pth`); both read
    `<torch.hub.get_dir()>/checkpoints/<file name of the URL>` when it exists, before any download.
    So the real piq classes are built, offline, on random weights of the right shapes. A
    temporary hub folder, never the user's own cache: random files under the real names there
    would be picked up by later real runs. The random values are seeded (reproducible).
    """
    import piq.perceptual
    import torchvision

    checkpoints = directory / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for weights, builder in (
        (torchvision.models.VGG16_Weights.IMAGENET1K_V1, torchvision.models.vgg16),
        (torchvision.models.AlexNet_Weights.IMAGENET1K_V1, torchvision.models.alexnet),  # pyiqa's LPIPS-Alex
    ):
        torch.save(_random_classifier_state(builder, generator), checkpoints / _url_name(weights.url))
    vgg_channels = [64, 128, 256, 512, 512]  # relu1_2 .. relu5_3, the layers piq's LPIPS and DISTS read
    # LPIPS: one non-negative weight per channel and layer, shaped (1, C, 1, 1) as piq multiplies them.
    lpips = [torch.rand(1, c, 1, 1, generator=generator) / c for c in vgg_channels]
    torch.save(lpips, checkpoints / _url_name(piq.perceptual.LPIPS._weights_url))
    # DISTS: alpha and beta over the input's 3 channels and the five layers, summing to 1 together.
    alpha, beta = torch.rand(2, 1, 3 + sum(vgg_channels), 1, 1, generator=generator)
    total = alpha.sum() + beta.sum()
    torch.save(
        {"alpha": alpha / total, "beta": beta / total}, checkpoints / _url_name(piq.perceptual.DISTS._weights_url)
    )
    previous = torch.hub._hub_dir  # restored as it was (None: follow $TORCH_HOME), not pinned to its current value
    torch.hub.set_dir(str(directory))
    try:
        yield directory
    finally:
        torch.hub._hub_dir = previous


def _url_name(url: str) -> str:
    return Path(urllib.parse.urlparse(url).path).name


def _random_classifier_state(builder: Callable[..., torch.nn.Module], generator: torch.Generator) -> dict:
    """A torchvision classifier's state dict: random convolutions (He init), zero biases, and the
    fully connected layers (unused by the metrics) stored as expanded zeros, so the file is small."""
    with torch.device("meta"):
        shapes = {key: value.shape for key, value in builder().state_dict().items()}
    state = {}
    for key, shape in shapes.items():
        if key.startswith("features") and key.endswith("weight"):
            fan_out = shape[0] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_out) ** 0.5
        elif key.startswith("features"):
            state[key] = torch.zeros(shape)
        else:
            state[key] = torch.zeros(()).expand(shape)
    return state


def _score_paths(
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ref: list[Path],
    dist: list[Path],
    *,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Score pairs of files with a tensor metric: one call per run of equally sized pairs in a batch."""
    values = []
    for start in range(0, len(ref), batch_size):
        pairs = [
            _same_size(r, d)
            for r, d in zip(ref[start : start + batch_size], dist[start : start + batch_size], strict=True)
        ]
        first = 0
        while first < len(pairs):
            end = first + 1
            while end < len(pairs) and pairs[end][0].shape == pairs[first][0].shape:
                end += 1
            refs = torch.stack([r for r, _ in pairs[first:end]]).to(device)
            dists = torch.stack([d for _, d in pairs[first:end]]).to(device)
            with torch.no_grad():
                values.append(score_tensors(refs, dists).float().flatten().cpu())
            first = end
    return torch.cat(values).numpy() if values else np.zeros(0)


def _same_size(ref_path: Path, dist_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel metrics need equal sizes: the distorted image is resized (bicubic) to the reference's."""
    ref = Image.open(ref_path).convert("RGB")
    dist = Image.open(dist_path).convert("RGB")
    if dist.size != ref.size:
        dist = dist.resize(ref.size, Image.Resampling.BICUBIC)
    to_tensor = lambda image: torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255  # noqa: E731
    return to_tensor(ref), to_tensor(dist)


def build_metrics(args: argparse.Namespace, device: torch.device) -> list[BenchMetric]:
    metrics = [dss_sqa_metric(args.weights, device, args.batch_size)]
    wanted = [(piq_metric, name, "piq") for name in args.baselines]
    wanted += [(pyiqa_metric, name, "pyiqa") for name in args.pyiqa_baselines]
    for build, name, library in wanted:
        try:
            metrics.append(build(name, device, args.batch_size, args.random_baselines))
        except Exception as exc:  # missing weights offline, library not installed, ...
            reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
            hint = ""
            if library == "piq" and name in ("LPIPS-VGG", "DISTS"):
                hint = (
                    f"; offline, put {'lpips' if name == 'LPIPS-VGG' else 'dists'}_weights.pt and "
                    f"vgg16-397923af.pth in {Path(torch.hub.get_dir()) / 'checkpoints'}, "
                    "or pass --random-baselines for a plumbing check"
                )
            print(f"skipping {name} ({library}): cannot build it ({reason}){hint}")
    return metrics


# -- LoViF ---------------------------------------------------------------------------------
def lovif_splits(root: Path) -> dict[str, Path]:
    splits = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _has_pairs(p)}
    return splits or ({root.name: root} if _has_pairs(root) else {})


def _has_pairs(folder: Path) -> bool:
    return any((folder / n).is_dir() for n in REF_FOLDERS) and any((folder / n).is_dir() for n in DIST_FOLDERS)


def run_lovif(root: Path, metrics: list[BenchMetric], out: Path, device: torch.device) -> dict:
    results = {}
    for split, folder in lovif_splits(root).items():
        tables = [p for p in folder.iterdir() if p.suffix.lower() in (".xlsx", ".csv")]
        if not tables:
            results[split] = {"submission": write_submission(folder, metrics[0], out / f"submission_{split}", device)}
            continue
        pairs = read_pairs(folder)
        split_results = {}
        for metric in metrics:
            start = time.perf_counter()
            quality = metric.quality(pairs.ref_paths, pairs.dist_paths)
            seconds = time.perf_counter() - start
            figures = agreement(quality, pairs.scores)
            figures["plcc_logistic"] = logistic_plcc(quality, pairs.scores)
            split_results[metric.name] = {
                **figures,
                "pairs": len(pairs),
                "seconds": seconds,
                "predictions": quality.tolist(),
                "labels": pairs.scores.tolist(),
            }
        results[split] = split_results
    return results


def write_submission(folder: Path, metric: BenchMetric, out: Path, device: torch.device) -> str:
    """Challenge submission for a split without labels: picture_name,Score and readme.txt."""
    ref_dir = next(folder / n for n in REF_FOLDERS if (folder / n).is_dir())
    dist_dir = next(folder / n for n in DIST_FOLDERS if (folder / n).is_dir())
    names = sorted(p.name for p in dist_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    start = time.perf_counter()
    scores = metric.score([ref_dir / n for n in names], [dist_dir / n for n in names])
    per_image = (time.perf_counter() - start) / max(1, len(names))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["picture_name", "Score"])
        writer.writerows([n, f"{s:.6f}"] for n, s in zip(names, scores, strict=True))
    (out / "readme.txt").write_text(
        f"runtime per image [s] : {per_image:.4f}\n"
        f"CPU[1] / GPU[0] : {0 if device.type == 'cuda' else 1}\n"
        "Extra Data [1] / No Extra Data [0] : 0\n"
        f"Other description : DSS-SQA ({metric.implementation}): DINOv3 ViT-B/16 + CLIP ViT-L/14-336 features, "
        "five cross-validated heads, semantic gate.\n"
    )
    return str(out)


# -- BAPPS ---------------------------------------------------------------------------------
def run_bapps(root: Path, metrics: list[BenchMetric]) -> dict:
    base = root / "2afc" / "val" if (root / "2afc" / "val").is_dir() else root
    results: dict[str, dict] = {m.name: {} for m in metrics}
    pooled: dict[str, list[np.ndarray]] = {m.name: [] for m in metrics}
    for subset in BAPPS_SUBSETS:
        folder = base / subset
        if not folder.is_dir():
            print(f"BAPPS: subset {subset} not found under {base}, skipped")
            continue
        names = sorted(p.stem for p in (folder / "judge").glob("*.npy"))
        judge = np.asarray([float(np.load(folder / "judge" / f"{n}.npy").ravel()[0]) for n in names])
        ref = [folder / "ref" / f"{n}.png" for n in names]
        for metric in metrics:
            q0 = metric.quality(ref, [folder / "p0" / f"{n}.png" for n in names])
            q1 = metric.quality(ref, [folder / "p1" / f"{n}.png" for n in names])
            per_triplet = two_afc(-q0, -q1, judge)  # quality enters as distance -q
            pooled[metric.name].append(per_triplet)
            results[metric.name][subset] = {
                "2afc": 100 * float(per_triplet.mean()),
                "triplets": len(names),
                "hard_accuracy": 100 * two_afc_hard_accuracy(-q0, -q1, judge),
            }
    for metric in metrics:
        subsets = results[metric.name]
        if subsets:
            subsets[OVERALL] = {"2afc": float(np.mean([s["2afc"] for s in subsets.values()]))}
            subsets["pooled"] = {"2afc": 100 * float(np.concatenate(pooled[metric.name]).mean())}
    return results


# -- speed ---------------------------------------------------------------------------------
def run_speed(
    metrics: list[BenchMetric],
    device: torch.device,
    batch_sizes: list[int],
    *,
    size: int = 224,
    rounds: int = 5,
    min_time: float = 0.2,
) -> list[dict]:
    """Every metric on the same random `size` px pairs; DSS-SQA also with cached references.

    Each point (metric, batch size) gets one warm-up call, then `rounds` measurements with
    `torch.utils.benchmark.Timer.blocked_autorange(min_run_time=min_time)`, taken round-robin
    over all points, so that a slow spell of a shared machine hits every point alike instead
    of the few measured during it. A round's figure is the median over its blocks; rows keep
    the median, quartiles and extremes over the rounds, in seconds per call and in pairs/s.
    """
    model = metrics[0].model
    cache = ReferenceCache(model)
    variants = [(m.name, m.random_weights, m.score_tensors) for m in metrics]
    variants.append(
        (
            "DSS-SQA, cached references",
            metrics[0].random_weights,
            lambda r, d: model.score_padded(_pad(r, model), _pad(d, model), reference_cache=cache).score,
        )
    )
    points = []
    for batch in batch_sizes:
        generator = torch.Generator().manual_seed(batch)
        ref = torch.rand(batch, 3, size, size, generator=generator).to(device)
        dist = (ref * 0.9).clamp(0, 1)
        for name, random, function in variants:
            points.append(SpeedPoint(name, random, batch, partial(function, ref, dist)))
    for point in points:
        point.warm_up(device)
    for _ in range(max(1, rounds)):
        for point in points:
            point.measure(device, min_time)
    return [point.row(size) for point in points]


@dataclass
class SpeedPoint:
    """One (metric, batch size) of the speed table and the rounds measured so far."""

    metric: str
    random_weights: bool
    batch: int
    function: Callable[[], object]
    seconds: list[float] = field(default_factory=list)  # per call, one median per round
    calls: int = 0
    peak_host_mib: float = 0.0
    peak_gpu_mib: float | None = None

    def _call(self) -> None:
        with torch.inference_mode():
            self.function()

    def warm_up(self, device: torch.device) -> None:
        self._call()  # lazy initialisation, caches, kernel selection
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        # The process's peak resident memory so far (Linux reports ru_maxrss in KiB).
        self.peak_host_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def measure(self, device: torch.device, min_time: float) -> None:
        from torch.utils import benchmark

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # Timer synchronises CUDA around its blocks; it defaults to one thread, so ask for what torch uses.
        timer = benchmark.Timer(stmt="call()", globals={"call": self._call}, num_threads=torch.get_num_threads())
        measurement = timer.blocked_autorange(min_run_time=min_time)
        self.seconds.append(float(measurement.median))
        self.calls += measurement.number_per_run * len(measurement.raw_times)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            self.peak_gpu_mib = max(self.peak_gpu_mib or 0.0, peak)

    def row(self, size: int) -> dict:
        seconds = np.asarray(self.seconds)
        throughput = self.batch / seconds
        row = {
            "metric": self.metric,
            "random_weights": self.random_weights,
            "batch": self.batch,
            "size": size,
            "samples": len(seconds),  # rounds
            "calls": self.calls,  # timed calls over all rounds
            "pairs_per_s": float(np.median(throughput)),
            "pairs_per_s_q1": float(np.percentile(throughput, 25)),
            "pairs_per_s_q3": float(np.percentile(throughput, 75)),
            "pairs_per_s_min": float(throughput.min()),
            "pairs_per_s_max": float(throughput.max()),
            "s_per_call": float(np.median(seconds)),
            "s_per_call_q1": float(np.percentile(seconds, 25)),
            "s_per_call_q3": float(np.percentile(seconds, 75)),
            "s_per_image": float(np.median(seconds)) / (2 * self.batch),
            "peak_host_mib": self.peak_host_mib,
        }
        if self.peak_gpu_mib is not None:
            row["peak_gpu_mib"] = self.peak_gpu_mib
        return row


def _pad(images: torch.Tensor, model: semantic_iqa.DSSSQA) -> torch.Tensor:
    return torch.stack([load_padded(image, model.config.preprocess.image_size) for image in images])


# -- report --------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    packages = {}
    for name in ("semantic-iqa", "torch", "torchvision", "timm", "transformers", "piq", "pyiqa", "numpy", "scipy"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "packages": packages,
        "device": f"{device} ({describe_device(device)})",
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "commit": commit,
    }


def published() -> dict:
    """The published figures, as results.json carries them (so plots need nothing but that file)."""
    return {
        "bapps_2afc": [
            {"source": source, "metric": PUBLISHED_2AFC_METRIC.get(source), "figures": figures}
            for source, figures in PUBLISHED_2AFC.items()
            if source != HUMAN_2AFC
        ],
        "bapps_human": {"source": HUMAN_2AFC, "figures": PUBLISHED_2AFC[HUMAN_2AFC]},
        "lovif_test": PUBLISHED_LOVIF_TEST,
    }


def write_report(out: Path, results: dict) -> None:
    lines = ["# Benchmark report", "", f"Environment: `{json.dumps(results['environment'])}`", ""]
    plain = {m["name"]: m.get("label", m["name"]) for m in results["metrics"]}
    labels = {m["name"]: plain[m["name"]] + (f" ({m['note']})" if m["note"] else "") for m in results["metrics"]}
    for split, split_results in results.get("lovif", {}).items():
        if "submission" in split_results:
            lines += [f"## LoViF {split}: no labels; submission written to `{split_results['submission']}`", ""]
            continue
        lines += [
            f"## LoViF {split} ({next(iter(split_results.values()))['pairs']} pairs)",
            "",
            "| metric | implementation | SROCC | PLCC | PLCC (logistic fit) | Final |",
            "|---|---|---|---|---|---|",
        ]
        for metric in results["metrics"]:
            r = split_results.get(metric["name"])
            if r:
                lines.append(
                    f"| {labels[metric['name']]} | {metric['implementation']} | {r['srocc']:.4f} | "
                    f"{r['plcc']:.4f} | {r['plcc_logistic']:.4f} | {r['final']:.4f} |"
                )
        lines.append("")
    lines += [
        "Published (test split, not computed here): "
        + "; ".join(
            f"{k}: SROCC {v['srocc']}, PLCC {v['plcc']}, Final {v['final']}" for k, v in PUBLISHED_LOVIF_TEST.items()
        ),
        "",
    ]
    if results.get("bapps"):
        columns = [*BAPPS_SUBSETS, OVERALL, "pooled"]
        lines += [
            "## BAPPS 2AFC (val), 2AFC score %",
            "",
            "| metric | " + " | ".join(columns) + " | hard acc. (mean) |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for metric in results["metrics"]:
            r = results["bapps"].get(metric["name"], {})
            if r:
                cells = [f"{r[c]['2afc']:.1f}" if c in r else "-" for c in columns]
                hard = np.mean([r[s]["hard_accuracy"] for s in BAPPS_SUBSETS if s in r])
                lines.append(f"| {labels[metric['name']]} | " + " | ".join(cells) + f" | {hard:.1f} |")
        lines += [
            "",
            "Published figures (labelled with their source; not computed here):",
            "",
            "| source | " + " | ".join([*BAPPS_SUBSETS, "mean of six / overall"]) + " |",
            "|---" * (len(BAPPS_SUBSETS) + 2) + "|",
        ]
        for source, figures in PUBLISHED_2AFC.items():
            cells = [str(figures.get(s, "-")) for s in BAPPS_SUBSETS]
            lines.append(
                f"| {source} | " + " | ".join(cells) + f" | {figures.get('mean of six', figures.get('overall'))} |"
            )
        lines.append("")
    if results.get("agiqa"):
        lines += agiqa.report_lines(results["agiqa"])
    if results.get("speed"):
        lines += [
            "## Speed",
            "",
            "Random square pairs, the same for every metric; one warm-up call per point, then rounds over all "
            "points, each timing every point with `torch.utils.benchmark.Timer.blocked_autorange`: median over "
            "the rounds, with the interquartile range and the extremes. Peak host memory: the process's peak "
            "after the point's warm-up.",
            "",
            "| metric | size px | batch | pairs/s (median) | pairs/s IQR | pairs/s min-max | s/image | rounds "
            "(calls) | peak host MiB | peak GPU MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["speed"]:
            gpu = f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"
            flag = " (RANDOM WEIGHTS)" if r.get("random_weights") else ""
            lines.append(
                f"| {plain.get(r['metric'], r['metric'])}{flag} | {r['size']} | {r['batch']} | "
                f"{r['pairs_per_s']:.4g} | {r['pairs_per_s_q1']:.4g}-{r['pairs_per_s_q3']:.4g} | "
                f"{r['pairs_per_s_min']:.4g}-{r['pairs_per_s_max']:.4g} | {r['s_per_image']:.4g} | "
                f"{r['samples']} ({r['calls']}) | {r['peak_host_mib']:.0f} | {gpu} |"
            )
        lines.append("")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    try:
        from benchmarks import plots
    except ImportError as exc:  # matplotlib is optional (the bench extra)
        print(f"no plots: {exc}")
        return
    plots.plot_all(results, out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lovif", type=Path, help="LoViF folder (Train/, Val/, Test/ splits, or one split)")
    parser.add_argument("--bapps", type=Path, help="BAPPS folder holding 2afc/val/<subset>/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", help="DSS-SQA weights folder or Hub repo id (default: published)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=list(PIQ_BASELINES),
        choices=list(PIQ_BASELINES),
        help="baselines from piq, the implementation of the published table (default: all; none for none)",
    )
    parser.add_argument(
        "--pyiqa-baselines",
        nargs="*",
        default=[],
        choices=list(PYIQA_BASELINES),
        help="the same baselines from pyiqa as extra rows named '<name> (pyiqa)' (default: none)",
    )
    parser.add_argument(
        "--random-baselines",
        action="store_true",
        help="LPIPS/DISTS on random weights, offline (plumbing checks only; rows and plots are marked)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--speed-batch-sizes",
        type=int,
        nargs="*",
        default=None,
        help="default: 1 2 4 8 on CPU, 1 4 16 64 256 on GPU; none to skip",
    )
    parser.add_argument("--speed-size", type=int, default=224, help="side of the random square speed pairs, px")
    parser.add_argument(
        "--repeats", type=int, default=5, help="speed: rounds over all points, each point timed once per round"
    )
    parser.add_argument(
        "--speed-min-time", type=float, default=0.2, help="speed: seconds of timing per point and round, at least"
    )
    parser.add_argument("--agiqa", type=Path, help="AGIQA-3K folder (data.csv and the images), for MST-CLIPIQA")
    parser.add_argument("--mst-weights", help="MST-CLIPIQA weights folder or Hub repo id (none are published)")
    parser.add_argument(
        "--agiqa-split", choices=agiqa.SPLITS, default="val", help="val: the recipe's held-out 20 %% (default); all"
    )
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = build_metrics(args, device)
    results: dict = {
        "environment": environment(device),
        "metrics": [m.summary() for m in metrics],
        "published": published(),
    }
    runners = {"lovif": lambda p: run_lovif(p, metrics, args.out, device), "bapps": lambda p: run_bapps(p, metrics)}
    for flag, runner in runners.items():
        folder = getattr(args, flag)
        if folder is None or not folder.is_dir():
            print(f"{flag}: {'not given' if folder is None else f'{folder} not found'}, skipped")
            continue
        results[flag] = runner(folder)
    agiqa_results = agiqa.run_agiqa(args.agiqa, args.mst_weights, device, args.batch_size, args.agiqa_split)
    if agiqa_results is not None:
        results["agiqa"] = agiqa_results
    batches = args.speed_batch_sizes
    if batches is None:
        batches = [1, 4, 16, 64, 256] if device.type == "cuda" else [1, 2, 4, 8]
    if batches:
        results["speed"] = run_speed(
            metrics, device, batches, size=args.speed_size, rounds=args.repeats, min_time=args.speed_min_time
        )
    write_report(args.out, results)
    print(f"report: {args.out / 'report.md'}")
    return results


if __name__ == "__main__":
    main()
