"""The baselines: SSIM, PSNR, LPIPS-VGG and DISTS from piq (the implementation behind the published
BAPPS table), the same from pyiqa as extra rows, and random weights for them offline (`random_torch_hub`)."""

from __future__ import annotations

import contextlib
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from benchmarks.bench_metric import BenchMetric, path_scorer

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
        path_scorer(score_tensors, batch_size, device),
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
        path_scorer(score_tensors, batch_size, device),
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


def build_baselines(
    piq_names: list[str], pyiqa_names: list[str], device: torch.device, batch_size: int, random_weights: bool
) -> list[BenchMetric]:
    """The baseline rows asked for; one that cannot be built is skipped with a line saying why."""
    metrics = []
    wanted = [(piq_metric, name, "piq") for name in piq_names]
    wanted += [(pyiqa_metric, name, "pyiqa") for name in pyiqa_names]
    for build, name, library in wanted:
        try:
            metrics.append(build(name, device, batch_size, random_weights))
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
