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
- Speed: pairs/s, s/image and peak memory of every metric on the same device.

Baselines come from pyiqa (its version is recorded per row). LPIPS and DISTS need pretrained
backbone and layer weights that pyiqa and torchvision download; offline, put them where
they look (`$TORCH_HOME/hub/checkpoints/` for torchvision, `$TORCH_HOME/hub/pyiqa/` for
pyiqa's files) or a baseline that cannot be built is skipped with a line saying why.
`--random-baselines` builds LPIPS without its trained layer weights (and, in the tests, on
randomly initialised backbone files): for testing the plumbing only, and its rows are marked
so. Missing data sets are skipped with a line, not a crash.

Writes OUT/report.md, OUT/results.json (every figure and the environment) and plots.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from semantic_iqa.metrics.dss_sqa.reference_cache import ReferenceCache
from semantic_iqa.timing import time_call

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import agiqa  # noqa: E402

BAPPS_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
OVERALL = "overall (mean of subsets)"  # the unweighted mean of the six subsets
# Published 2AFC figures (soft agreement, %) on BAPPS val, from the datasets reference page.
PUBLISHED_2AFC = {
    "human (LPIPS paper)": {"traditional": 80.8, "cnn": 84.4, "superres": 73.4, "overall": 73.9},
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
PUBLISHED_LOVIF_TEST = {"DSS-SQA (challenge report, test)": {"srocc": 0.8503, "plcc": 0.8418, "final": 0.8469}}


@dataclass
class BenchMetric:
    """A metric under test: `score(ref, dist)` takes paths and returns one number per pair."""

    name: str
    implementation: str
    higher_is_better: bool
    score: Callable[[list[Path], list[Path]], np.ndarray]
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    note: str = ""
    model: semantic_iqa.DSSSQA | None = None  # DSS-SQA's own model, for the cached-reference speed row

    def quality(self, ref: list[Path], dist: list[Path]) -> np.ndarray:
        """Scores oriented so that higher = more similar / better, for correlations and 2AFC."""
        values = self.score(ref, dist)
        return values if self.higher_is_better else -values


def dss_sqa_metric(weights: str | None, device: torch.device, batch_size: int) -> BenchMetric:
    model = semantic_iqa.DSSSQA.from_pretrained(weights, device=device)

    def score(ref: list[Path], dist: list[Path]) -> np.ndarray:
        return model.predict(ref, dist, batch_size=batch_size).score.float().cpu().numpy()

    def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return model(ref, dist).score

    version = importlib.metadata.version("semantic-iqa")
    # Test models (make-tiny) say in their provenance that their weights are random.
    random = "random" in str(model.config.provenance.get("note", ""))
    note = "RANDOM WEIGHTS: plumbing test only, not a figure" if random else ""
    implementation = f"semantic-iqa {version} ({weights or 'published weights'})"
    return BenchMetric("DSS-SQA", implementation, True, score, score_tensors, note=note, model=model)


PYIQA_BASELINES = {"SSIM": "ssim", "PSNR": "psnr", "LPIPS-Alex": "lpips", "LPIPS-VGG": "lpips-vgg", "DISTS": "dists"}


def pyiqa_metric(name: str, device: torch.device, batch_size: int, random_weights: bool) -> BenchMetric:
    import pyiqa

    options = {}
    if random_weights and name.startswith("LPIPS"):
        options = {"pretrained": False}  # random layer weights; the backbone is whatever torchvision finds
    metric = pyiqa.create_metric(PYIQA_BASELINES[name], device=device, **options)

    def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return metric(dist.to(device), ref.to(device)).flatten()

    def score(ref: list[Path], dist: list[Path]) -> np.ndarray:
        values = []
        for start in range(0, len(ref), batch_size):
            pairs = [
                _same_size(r, d)
                for r, d in zip(ref[start : start + batch_size], dist[start : start + batch_size], strict=True)
            ]
            with torch.no_grad():
                for r, d in pairs:  # sizes differ between pairs, so one pair per call
                    values.append(float(score_tensors(r[None], d[None])))
        return np.asarray(values)

    note = "RANDOM WEIGHTS: plumbing test only, not a figure" if options else ""
    return BenchMetric(
        name,
        f"pyiqa {pyiqa.__version__} '{PYIQA_BASELINES[name]}'",
        not metric.lower_better,
        score,
        score_tensors,
        note=note,
    )


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
    for name in args.baselines:
        try:
            metrics.append(pyiqa_metric(name, device, args.batch_size, args.random_baselines))
        except Exception as exc:  # missing weights offline, pyiqa not installed, ...
            print(f"skipping {name}: cannot build it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
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
def run_speed(metrics: list[BenchMetric], device: torch.device, batch_sizes: list[int], repeats: int) -> list[dict]:
    """Median time of each metric on the same random 224 px pairs; DSS-SQA also with cached references."""
    rows = []
    model = metrics[0].model
    cache = ReferenceCache(model)
    variants = [(m.name, m.score_tensors) for m in metrics]
    variants.append(
        (
            "DSS-SQA, cached references",
            lambda r, d: model.score_padded(_pad(r, model), _pad(d, model), reference_cache=cache).score,
        )
    )
    for batch in batch_sizes:
        generator = torch.Generator().manual_seed(batch)
        ref = torch.rand(batch, 3, 224, 224, generator=generator).to(device)
        dist = (ref * 0.9).clamp(0, 1)
        for name, function in variants:
            timing = time_call(partial(function, ref, dist), device, repeats=repeats)
            row = {
                "metric": name,
                "batch": batch,
                "pairs_per_s": batch / timing.median_s,
                "s_per_image": timing.median_s / (2 * batch),
                "peak_host_mib": timing.peak_host_mib,
            }
            if timing.peak_gpu_mib is not None:
                row["peak_gpu_mib"] = timing.peak_gpu_mib
            rows.append(row)
    return rows


def _pad(images: torch.Tensor, model: semantic_iqa.DSSSQA) -> torch.Tensor:
    return torch.stack([load_padded(image, model.config.preprocess.image_size) for image in images])


# -- report --------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    packages = {}
    for name in ("semantic-iqa", "torch", "timm", "transformers", "pyiqa", "numpy", "scipy"):
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


def write_report(out: Path, results: dict) -> None:
    lines = ["# Benchmark report", "", f"Environment: `{json.dumps(results['environment'])}`", ""]
    notes = {m["name"]: m["note"] for m in results["metrics"] if m["note"]}
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
                flag = f" ({notes[metric['name']]})" if metric["name"] in notes else ""
                lines.append(
                    f"| {metric['name']}{flag} | {metric['implementation']} | {r['srocc']:.4f} | "
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
                flag = f" ({notes[metric['name']]})" if metric["name"] in notes else ""
                lines.append(f"| {metric['name']}{flag} | " + " | ".join(cells) + f" | {hard:.1f} |")
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
            "Median of the repetitions after one warm-up, random 224 px pairs; peak host memory is the "
            "process peak so far.",
            "",
            "| metric | batch | pairs/s | s/image | peak host MiB | peak GPU MiB |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["speed"]:
            gpu = f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"
            lines.append(
                f"| {r['metric']} | {r['batch']} | {r['pairs_per_s']:.2f} | {r['s_per_image']:.4f} | "
                f"{r['peak_host_mib']:.0f} | {gpu} |"
            )
        lines.append("")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(out, results)


def plot(out: Path, results: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        print("matplotlib is not installed: no plots")
        return
    for split, split_results in results.get("lovif", {}).items():
        if "submission" in split_results:
            continue
        figure, axes = pyplot.subplots(1, len(split_results), figsize=(3.2 * len(split_results), 3.2), squeeze=False)
        for axis, (name, r) in zip(axes[0], split_results.items(), strict=True):
            axis.scatter(r["labels"], r["predictions"], s=8, alpha=0.7)
            axis.set(title=f"{name}\nSROCC {r['srocc']:.3f}", xlabel="MOS", ylabel="score (higher = better)")
        figure.tight_layout()
        figure.savefig(out / f"lovif_{split}_scatter.png", dpi=110)
        pyplot.close(figure)
    if results.get("bapps"):
        figure, axis = pyplot.subplots(figsize=(8, 3.5))
        names = [n for n, r in results["bapps"].items() if r]
        width = 0.8 / max(1, len(names))
        for index, name in enumerate(names):
            values = [results["bapps"][name].get(s, {}).get("2afc", np.nan) for s in BAPPS_SUBSETS]
            axis.bar(np.arange(len(BAPPS_SUBSETS)) + index * width, values, width, label=name)
        axis.set_xticks(np.arange(len(BAPPS_SUBSETS)) + 0.4 - width / 2, BAPPS_SUBSETS)
        axis.set(ylabel="2AFC score (%)", ylim=(0, 100))
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out / "bapps_2afc.png", dpi=110)
        pyplot.close(figure)
    if results.get("agiqa"):
        agiqa.plot(out, results["agiqa"], pyplot)
    if results.get("speed"):
        figure, axis = pyplot.subplots(figsize=(5, 3.5))
        for name in dict.fromkeys(r["metric"] for r in results["speed"]):
            rows = [r for r in results["speed"] if r["metric"] == name]
            axis.plot([r["batch"] for r in rows], [r["pairs_per_s"] for r in rows], marker="o", label=name)
        axis.set(xscale="log", yscale="log", xlabel="batch size", ylabel="pairs/s")
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out / "throughput.png", dpi=110)
        pyplot.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lovif", type=Path, help="LoViF folder (Train/, Val/, Test/ splits, or one split)")
    parser.add_argument("--bapps", type=Path, help="BAPPS folder holding 2afc/val/<subset>/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", help="DSS-SQA weights folder or Hub repo id (default: published)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baselines", nargs="*", default=list(PYIQA_BASELINES), choices=list(PYIQA_BASELINES))
    parser.add_argument("--random-baselines", action="store_true", help="LPIPS with random weights (plumbing only)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--speed-batch-sizes",
        type=int,
        nargs="*",
        default=None,
        help="default: 1 2 4 8 on CPU, 1 4 16 64 256 on GPU; none to skip",
    )
    parser.add_argument("--repeats", type=int, default=3)
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
        "metrics": [
            {"name": m.name, "implementation": m.implementation, "higher_is_better": m.higher_is_better, "note": m.note}
            for m in metrics
        ],
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
        results["speed"] = run_speed(metrics, device, batches, args.repeats)
    write_report(args.out, results)
    print(f"report: {args.out / 'report.md'}")
    return results


if __name__ == "__main__":
    main()
