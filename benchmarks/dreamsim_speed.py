"""DreamSim on the CPU: pairs/s of the authors' `PerceptualModel` and of ours, same pairs, one process.

Both models are built from one authors' release written with random full-size weights by
`tests/dreamsim_release.py` (the authors' own classes, a random LoRA saved by peft): theirs by
their `dreamsim(pretrained=True, ...)`, ours by `convert-dreamsim` on the same files. Speed does
not depend on the weights; the distances mean nothing.

Inputs are the same decoded, resized 224 x 224 pairs for both (the model's cost: normalisation,
every branch on both images, the distance): the authors' `model(a, b)` against our
`score_batch` (LoRA merged, so one plain pass per branch per image). Each figure is the median
of `--repeats` timed calls after a warm-up. bf16 runs only where the CPU has native bf16
(avx512_bf16 or amx_bf16): elsewhere it is emulated, slower than fp32. Run:

    python benchmarks/dreamsim_speed.py                  # ensemble, batches 1 and 16
    python benchmarks/dreamsim_speed.py --quick          # clip_vitb32, batches 1 and 2, one repeat
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the authors' release writer is a test helper

from dreamsim_release import authors_model, write_release  # noqa: E402

import semantic_iqa  # noqa: E402
from semantic_iqa.metrics.dreamsim.convert import convert_dreamsim  # noqa: E402
from semantic_iqa.timing import time_call  # noqa: E402

CPU = torch.device("cpu")


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (Linux: its flags in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="ensemble", choices=("ensemble", "dino_vitb16", "clip_vitb32"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="clip_vitb32, batches 1 and 2, no warm-up, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.model_type, args.batch_sizes, args.warmup, args.repeats = "clip_vitb32", [1, 2], 0, 1
    print(
        f"DreamSim {args.model_type} on the CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; random weights"
    )
    with tempfile.TemporaryDirectory() as temporary:
        release = write_release(Path(temporary) / "release", args.model_type, seed=0)
        weights = convert_dreamsim(release, Path(temporary) / "weights")
        theirs, _ = authors_model(release, args.model_type)
        ours = semantic_iqa.create_metric("dreamsim", weights=weights, device="cpu")
    generator = torch.Generator().manual_seed(0)
    largest = max(args.batch_sizes)
    refs, dists = (torch.rand(largest, 3, 224, 224, generator=generator) for _ in range(2))

    precisions = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    print("| model | precision | batch | pairs/s | s/pair | ours / authors' (pairs/s) |")
    print("|---|---|---|---|---|---|")
    for batch in args.batch_sizes:
        a, b = refs[:batch], dists[:batch]
        timing = time_call(lambda a=a, b=b: theirs(a, b), CPU, warmup=args.warmup, repeats=args.repeats)
        authors = batch / timing.median_s
        print(f"| authors' PerceptualModel (peft LoRA) | fp32 | {batch} | {authors:.2f} | {1 / authors:.3f} | 1 |")
        for precision in precisions:
            ours.set_precision(precision)
            images = {"ref": a, "dist": b}
            timing = time_call(lambda i=images: ours.score_batch(i, {}), CPU, warmup=args.warmup, repeats=args.repeats)
            rate = batch / timing.median_s
            row = f"{rate:.2f} | {1 / rate:.3f} | {rate / authors:.2f}"
            print(f"| semantic-iqa (merged) | {precision} | {batch} | {row} |")
    if "bf16" not in precisions:
        print("bf16: not run (this CPU has no native bf16, avx512_bf16 or amx_bf16; emulated, it is slower than fp32)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end; peak host memory {timing.peak_host_mib:.0f} MiB")


if __name__ == "__main__":
    main()
