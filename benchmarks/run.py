"""DSS-SQA and DreamSim against SSIM, PSNR, LPIPS and DISTS on LoViF, BAPPS and NIGHTS 2AFC, with speed, in one run.

    python benchmarks/run.py --lovif LOVIF_DIR --bapps BAPPS_DIR --nights NIGHTS_DIR --out results/
        [--weights W] [--dreamsim-weights DW] [--nights-split test] [--device auto]
        [--agiqa AGIQA_DIR --mst-weights MST_W [--agiqa-split val|all]]

- LoViF (`--lovif`: a folder with Train/, Val/, Test/ splits, each Ref/ + Dist/ and, where
  labels exist, a score table): SROCC (tie-aware), PLCC (raw), PLCC after a 4-parameter
  logistic fit (labelled as such), Final = 0.6 SROCC + 0.4 PLCC per metric; a distance enters
  as its negative (the report says so). A split without labels gets a challenge submission
  (`picture_name,Score` + readme.txt) from DSS-SQA (`benchmarks/lovif.py`).
- BAPPS (`--bapps`: the folder holding `2afc/val/<subset>/{ref,p0,p1,judge}`): the official
  2AFC score per subset (ties worth 0.5), the mean of the six subsets, the pooled mean, and
  hard accuracy; quality scores enter as distance -q. Published figures are shown beside ours.
- NIGHTS (`--nights`: the folder holding `data.csv`, `ref/`, `distort/`): DreamSim's 2AFC
  benchmark as its authors score it, per split (`--nights-split`, default test; test also by
  `is_imagenet`), for every full-reference metric (`benchmarks/nights.py`); no-reference
  metrics are listed as skipped, with the reason. The data set is checked before any model is
  built: a broken one is one line and exit code 2.
- AGIQA-3K (`--agiqa`: the folder holding `data.csv` and the images): MST-CLIPIQA with the
  weights `--mst-weights` (variant from the folder), SRCC and PLCC against `mos_quality`
  (and `mos_align` for variant B), on the reference split's held-out 20 % or all images
  (see `benchmarks/agiqa.py`).
- Speed: pairs/s (median, quartiles and extremes over rounds timed with torch.utils.benchmark),
  s/image and peak memory of every metric on the same device (`benchmarks/timing.py`).

Our metrics (DSS-SQA always, DreamSim with `--dreamsim-weights`, e.g. a folder written by
`semantic-iqa convert-dreamsim`) are built from the registry, which says which way is better.
Baselines come from piq, the implementation behind the published BAPPS table (piq.ssim,
piq.psnr, piq.LPIPS, piq.DISTS; its version is recorded per row); `--pyiqa-baselines` adds the
same metrics from pyiqa as extra rows named "<name> (pyiqa)". piq's LPIPS and DISTS download
their learned weights and torchvision's VGG16 through torch.hub; offline, put the files in
`$TORCH_HOME/hub/checkpoints/` (`lpips_weights.pt`, `dists_weights.pt`, `vgg16-397923af.pth`)
or a baseline that cannot be built is skipped with a line saying why. `--random-baselines`
builds the real piq classes on seeded random weights of the right shapes from a temporary
torch.hub folder (see `benchmarks/baselines.py`): for testing the plumbing only, and its rows
(and plots) are marked so, as are our metrics' rows from random (make-tiny) weights. Missing
data sets are skipped with a line, not a crash.

Writes OUT/report.md, OUT/results.json (every figure, the environment, the published figures,
a `random_weights` flag per row) and the plots of `benchmarks/plots.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from semantic_iqa.devices import resolve_device
from semantic_iqa.errors import SemanticIQAError, WeightsError

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import agiqa, nights  # noqa: E402
from benchmarks.bapps import run_bapps  # noqa: E402
from benchmarks.baselines import PIQ_BASELINES, PYIQA_BASELINES, build_baselines, random_torch_hub  # noqa: E402
from benchmarks.bench_metric import RANDOM_NOTE, BenchMetric, dreamsim_metric, dss_sqa_metric  # noqa: E402
from benchmarks.bench_metric import same_size as _same_size  # noqa: E402
from benchmarks.lovif import lovif_splits, run_lovif, write_submission  # noqa: E402
from benchmarks.published import (  # noqa: E402
    BAPPS_SUBSETS,
    HUMAN_2AFC,
    OVERALL,
    PUBLISHED_2AFC,
    PUBLISHED_2AFC_METRIC,
    PUBLISHED_LOVIF_TEST,
    PUBLISHED_NIGHTS,
    published,
)
from benchmarks.report import environment, write_report  # noqa: E402
from benchmarks.timing import SpeedPoint, run_speed  # noqa: E402

# What the benchmark modules offer under the names run.py always had (tests and scripts use them).
__all__ = [
    "BAPPS_SUBSETS",
    "HUMAN_2AFC",
    "OVERALL",
    "PIQ_BASELINES",
    "PUBLISHED_2AFC",
    "PUBLISHED_2AFC_METRIC",
    "PUBLISHED_LOVIF_TEST",
    "PUBLISHED_NIGHTS",
    "PYIQA_BASELINES",
    "RANDOM_NOTE",
    "BenchMetric",
    "SpeedPoint",
    "_same_size",
    "build_metrics",
    "environment",
    "lovif_splits",
    "main",
    "published",
    "random_torch_hub",
    "run_bapps",
    "run_lovif",
    "run_speed",
    "write_report",
    "write_submission",
]
# The option that gives each of our metrics its weights (said when a metric is not run for want of them).
WEIGHT_FLAGS = {"dss_sqa": "--weights", "dreamsim": "--dreamsim-weights"}


def build_metrics(args: argparse.Namespace, device: torch.device) -> list[BenchMetric]:
    """DSS-SQA first (the submission and cached-reference speed rows use it), DreamSim, then the baselines."""
    metrics = [dss_sqa_metric(args.weights, device, args.batch_size)]
    if args.dreamsim_weights is None:
        print("dreamsim: no --dreamsim-weights given (make them with semantic-iqa convert-dreamsim), skipped")
    else:
        try:
            metrics.append(dreamsim_metric(args.dreamsim_weights, device, args.batch_size))
        except WeightsError as exc:
            print(f"dreamsim: weights {args.dreamsim_weights} cannot be used ({exc}), skipped")
    metrics += build_baselines(args.baselines, args.pyiqa_baselines, device, args.batch_size, args.random_baselines)
    return metrics


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lovif", type=Path, help="LoViF folder (Train/, Val/, Test/ splits, or one split)")
    parser.add_argument("--bapps", type=Path, help="BAPPS folder holding 2afc/val/<subset>/")
    parser.add_argument("--nights", type=Path, help="NIGHTS folder holding data.csv, ref/ and distort/")
    parser.add_argument(
        "--nights-split",
        nargs="+",
        choices=nights.SPLITS,
        default=["test"],
        help="NIGHTS splits to score (default: test, also reported by is_imagenet)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", help="DSS-SQA weights folder or Hub repo id (default: published)")
    parser.add_argument("--dreamsim-weights", help="DreamSim weights folder or Hub repo id (default: no DreamSim row)")
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
    return parser


def _found(flag: str, folder: Path | None) -> bool:
    if folder is None or not folder.is_dir():
        print(f"{flag}: {'not given' if folder is None else f'{folder} not found'}, skipped")
        return False
    return True


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    device = resolve_device(args.device)
    # The NIGHTS table is checked first: a broken data set stops the run before any model is built.
    nights_data = nights.read_nights(args.nights, tuple(args.nights_split)) if _found("nights", args.nights) else None
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = build_metrics(args, device)
    results: dict = {
        "environment": environment(device),
        "metrics": [m.summary() for m in metrics],
        "published": published(),
    }
    if _found("lovif", args.lovif):
        results["lovif"] = run_lovif(args.lovif, metrics, args.out, device)
    if _found("bapps", args.bapps):
        results["bapps"] = run_bapps(args.bapps, metrics)
    if nights_data is not None:
        results["nights"] = nights.run_nights(nights_data, metrics, WEIGHT_FLAGS)
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
    try:
        main()
    except SemanticIQAError as exc:  # bad input (a data set, weights, an option): one line, exit code 2
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
