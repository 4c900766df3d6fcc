"""The authors' inference pipelines beside ours, same process, same decoded PIL images (CPU).

Contenders, all from the same PIL images, preprocessing included (see
`benchmarks/authors_pipelines.py` for what "the authors' pipeline" is):

- DSS-SQA: the authors' 5-fold pipeline (five fold models, each running both backbones on
  both images) in fp32; ours (`DSSSQA.predict`: one backbone pass per image serves the five
  fold heads) in fp32 and with bf16 backbones. Pairs: examples/ref.png at 500x375 and a
  Gaussian-blurred copy (radius 1 + i for pair i).
- MST-CLIPIQA (variant A): the authors' model class and eval transform in fp32; ours
  (`MSTCLIPIQA.predict`) in fp32 and bf16. Images: examples/ref.png at 500x375, blurred by
  radius i for image i.

Weights are RANDOM (full-size architectures by default): the times mean something, the
scores do not. The authors' modules are loaded with our model's tensors, so both pipelines
must give the same scores: the script prints the largest |difference| and fails (exit 1)
above 1e-4. Each contender is called once (its scores; the warm-up), then timed `--repeats`
times (median). Run:

    python benchmarks/authors_speed.py --metric dss_sqa --pairs 1 --repeats 3
    python benchmarks/authors_speed.py --metric mst_clipiqa --pairs 1 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.authors_pipelines import authors_dss_from, authors_mst_from  # noqa: E402
from benchmarks.machine import NATIVE_BF16_FLAGS, cpu_facts  # noqa: E402
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model  # noqa: E402
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa  # noqa: E402
from semantic_iqa.timing import time_call  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ref.png"
SIZE = (500, 375)
BOUND = 1e-4  # authors' pipeline vs ours in fp32, same weights: largest allowed |score difference|


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """CPU model name and which native-bf16 flags it has (from /proc/cpuinfo)."""
    facts = cpu_facts(cpuinfo)
    present = [flag for flag in NATIVE_BF16_FLAGS if flag in facts["flags"]]
    named = ", ".join(present) if present else "none"
    return f"{facts['cpu']}; native bf16 flags: {named} (of {', '.join(NATIVE_BF16_FLAGS)})"


def benchmark_images(count: int) -> tuple[Image.Image, list[Image.Image]]:
    """examples/ref.png at 500x375, and `count` copies blurred with radius 1, 2, ... (decoded, in memory)."""
    photo = Image.open(EXAMPLE).convert("RGB").resize(SIZE, Image.BICUBIC)
    return photo, [photo.filter(ImageFilter.GaussianBlur(1 + i)) for i in range(count)]


def contenders(metric: str, preset: str, count: int, batch: int) -> tuple[str, list[tuple[str, str, Callable]]]:
    """(unit, [(pipeline, precision, call)]) for `metric`; each call returns the [count] scores.

    The authors' pipeline is built first, from our fp32 model's tensors; ours switches to bf16
    backbones (`set_precision`) just before its bf16 call runs, hence the setup in the call list.
    """
    photo, blurred = benchmark_images(count)
    if metric == "dss_sqa":
        ours = build_random_model(preset, seed=0)
        authors = authors_dss_from(ours, preset)
        refs = [photo] * count
        run_authors = lambda: authors(refs, blurred, batch_size=batch)  # noqa: E731
        run_ours = lambda: ours.predict(refs, blurred, batch_size=batch).score  # noqa: E731
        unit, label = "pair", "authors' 5-fold pipeline (each fold runs both backbones)"
    else:
        ours = build_random_mst_clipiqa("A", preset, seed=0)
        authors = authors_mst_from(ours, preset)
        images = [photo, *blurred[:-1]]  # radius 0, 1, ..., count - 1
        run_authors = lambda: authors(images, batch_size=batch)  # noqa: E731
        run_ours = lambda: ours.predict(images, batch_size=batch).score  # noqa: E731
        unit, label = "image", "authors' model class and eval transform"

    def run_ours_bf16() -> torch.Tensor:
        if ours.precision != "bf16":
            ours.set_precision("bf16")
        return run_ours()

    return unit, [(label, "fp32", run_authors), ("ours", "fp32", run_ours), ("ours", "bf16 backbones", run_ours_bf16)]


def measure(calls: list[tuple[str, str, Callable]], count: int, repeats: int) -> list[dict]:
    """Each call once for its scores (the warm-up), then `repeats` timed calls; in the given order."""
    rows = []
    cpu = torch.device("cpu")
    for name, precision, call in calls:
        with torch.inference_mode():
            scores = call().float()
        timing = time_call(call, cpu, warmup=0, repeats=repeats)
        rows.append({"pipeline": name, "precision": precision, "scores": scores, "s_per_item": timing.median_s / count})
        rows[-1]["peak_host_mib"] = timing.peak_host_mib
    return rows


def print_report(metric: str, preset: str, unit: str, rows: list[dict], args: argparse.Namespace) -> float:
    """The Markdown table and the environment; returns max |authors - ours fp32|."""
    authors, ours = rows[0], rows[1]
    print(f"## {metric}: the authors' pipeline vs ours ({args.pairs} {unit}(s), batch {args.batch_size})")
    print(f"RANDOM weights ({preset}-size architectures): the times mean something, the scores do not.")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU: {cpu_description()}")
    print(f"median of {args.repeats} after one warm-up call; inputs: decoded PIL images {SIZE[0]}x{SIZE[1]}")
    print()
    print(f"| pipeline | precision | s/{unit} | speed-up vs authors | max abs score diff vs authors | peak host MiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        diff = float((row["scores"] - authors["scores"]).abs().max())
        speedup = authors["s_per_item"] / row["s_per_item"]
        print(
            f"| {row['pipeline']} | {row['precision']} | {row['s_per_item']:.3f} | {speedup:.1f}x "
            f"| {diff:.2e} | {row['peak_host_mib']:.0f} |"
        )
    difference = float((ours["scores"] - authors["scores"]).abs().max())
    verdict = "OK" if difference <= BOUND else "FAILED: the reconstruction does not match ours"
    print()
    print(f"same weights, authors' fp32 vs ours fp32: max |score diff| = {difference:.2e} (bound {BOUND:g}): {verdict}")
    return difference


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", choices=["dss_sqa", "mst_clipiqa"], required=True)
    parser.add_argument("--pairs", type=int, default=1, help="pairs (DSS-SQA) or images (MST-CLIPIQA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="items per batch, both pipelines")
    parser.add_argument("--preset", choices=["full", "tiny"], default="full", help="tiny: a quick check only")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeats < 1 or args.batch_size < 1:
        parser.error("--pairs, --repeats and --batch-size must be at least 1")
    unit, calls = contenders(args.metric, args.preset, args.pairs, args.batch_size)
    rows = measure(calls, args.pairs, args.repeats)
    difference = print_report(args.metric, args.preset, unit, rows, args)
    return {"unit": unit, "rows": rows, "max_abs_diff": difference, "equivalent": difference <= BOUND}


if __name__ == "__main__":
    sys.exit(0 if main()["equivalent"] else 1)
