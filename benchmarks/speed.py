"""Throughput and peak memory of DSS-SQA at the reference architecture's full size.

Weights are random (speed does not depend on them). Inputs are decoded 224x224 float
tensors, so the figure is the model's cost: resize-pad, both backbones, fusion, 5 heads,
gate. Run:

    python benchmarks/speed.py --device cpu --batch-sizes 1 8
    python benchmarks/speed.py --device cuda --batch-sizes 1 8 32 128

Prints a Markdown table and, with --json, writes every figure with the environment.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource

import torch

import semantic_iqa
from semantic_iqa.devices import describe_device, resolve_device
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.timing import time_call


def time_batches(model, batch_size: int, device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(batch_size)
    ref = torch.rand(batch_size, 3, 224, 224, generator=generator).to(device)
    dist = (ref * 0.9).clamp(0, 1)
    timing = time_call(lambda: model(ref, dist), device, warmup=warmup, repeats=repeats)
    result = {
        "batch_size": batch_size,
        "median_s_per_batch": timing.median_s,
        "pairs_per_s": batch_size / timing.median_s,
        "s_per_image": timing.median_s / (2 * batch_size),
        "peak_host_mib": timing.peak_host_mib,
    }
    if timing.peak_gpu_mib is not None:
        result["peak_gpu_mib"] = timing.peak_gpu_mib
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = build_random_model("full").to(device).eval()
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [time_batches(model, b, device, args.warmup, args.repeats) for b in args.batch_sizes]

    print(
        f"device: {device} ({describe_device(device)}),"
        f" torch {torch.__version__}, threads {torch.get_num_threads()}, host memory after load {after_load:.0f} MiB"
    )
    header = "| batch | pairs/s | s/image | peak host MiB |" + (" peak GPU MiB |" if device.type == "cuda" else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        gpu = f" {r['peak_gpu_mib']:.0f} |" if "peak_gpu_mib" in r else ""
        print(
            f"| {r['batch_size']} | {r['pairs_per_s']:.3f} | {r['s_per_image']:.3f} | {r['peak_host_mib']:.0f} |{gpu}"
        )
    if args.json:
        environment = {
            "semantic_iqa": semantic_iqa.__version__,
            "torch": torch.__version__,
            "device": f"{device} ({describe_device(device)})",
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
        }
        with open(args.json, "w") as handle:
            json.dump({"environment": environment, "results": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
