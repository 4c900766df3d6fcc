"""DSS-SQA throughput variants and their accuracy, checked and timed in one call.

    python benchmarks/gpu_speed.py --device cuda [--weights W] [--batch-sizes 1 16 64 128 256] [--pairs 256]
    python benchmarks/gpu_speed.py --device cpu --batch-sizes 1 4 --pairs 16      # what runs without a GPU

1. Accuracy: every variant's scores against the float32 CPU reference on the same pairs
   (photo crops of varied sizes and distortions), max and mean |difference|. The bound to
   keep is 0.01 on the 0-5 scale.
2. Speed on decoded 224x224 tensors: pairs/s for the full gated 5-fold model, distorted
   images/s with cached references, and peak GPU memory, per variant and batch size
   (one warm-up, median of the repetitions).

Variants: fp32; bf16 backbones (fp32 head); bf16 + `compile_encoders` (torch.compile of the
backbones; on CUDA, and on the CPU with `--compile`); each also with reference features
cached. Each variant's gate decisions are compared with the reference's: the number of pairs
whose gate flips is reported beside the score differences. Without `--weights` the reference
architecture is built with random weights: timings are valid, the accuracy figures are
then only a check of the arithmetic, not of real scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

import semantic_iqa
from semantic_iqa.devices import describe_device, resolve_device
from semantic_iqa.inputs import load_padded
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.reference_cache import ReferenceCache
from semantic_iqa.timing import time_call

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ref.png"


def load(weights: str | None, device: torch.device, precision: str, preset: str = "full") -> semantic_iqa.DSSSQA:
    if weights:
        return semantic_iqa.DSSSQA.from_pretrained(weights, device=device, precision=precision)
    return build_random_model(preset).to(device).set_precision(precision).eval()


def accuracy_pairs(count: int) -> tuple[list[Image.Image], list[Image.Image]]:
    """Crops of a photograph at varied sizes, each with a different distortion."""
    photo = Image.open(EXAMPLE).convert("RGB")
    rng = np.random.default_rng(0)
    refs, dists = [], []
    for index in range(count):
        width, height = (int(v) for v in rng.integers(48, 256, 2))
        left, top = int(rng.integers(0, 256 - width + 1)), int(rng.integers(0, 256 - height + 1))
        ref = photo.crop((left, top, left + width, top + height))
        kind = index % 3
        if kind == 0:
            dist = ref.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        elif kind == 1:
            dist = ref.resize((max(1, width // 3), max(1, height // 3))).resize((width, height))
        else:
            dist = ref.rotate(float(rng.uniform(-30, 30)))
        refs.append(ref)
        dists.append(dist)
    return refs, dists


def padded(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([load_padded(image, 224) for image in images])


def time_variant(model, cache, device, batch: int, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(batch)
    ref = torch.rand(batch, 3, 224, 224, generator=generator).to(device)
    dist = (ref * 0.9).clamp(0, 1)
    timing = time_call(lambda: model.score_padded(ref, dist, reference_cache=cache), device, repeats=repeats)
    rate = batch / timing.median_s
    row = {"batch": batch, "pairs_per_s": rate, "dist_images_per_s": rate if cache else None}
    if timing.peak_gpu_mib is not None:
        row["peak_gpu_mib"] = timing.peak_gpu_mib
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", help="weights folder or repo id (default: random reference architecture)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 128, 256])
    parser.add_argument("--pairs", type=int, default=256, help="pairs for the accuracy check")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="full", choices=("full", "tiny"), help="random architecture size")
    parser.add_argument("--compile", action="store_true", help="also bf16 + compile on the CPU (minutes of warm-up)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)

    refs, dists = accuracy_pairs(args.pairs)
    ref_padded, dist_padded = padded(refs), padded(dists)
    reference = load(args.weights, torch.device("cpu"), "fp32", args.preset)
    with torch.inference_mode():
        expected_output = reference.score_padded(ref_padded, dist_padded)
    expected, expected_gated = expected_output.score, expected_output.gated
    del reference

    variants = [("fp32", "fp32", False), ("bf16", "bf16", False)]
    if device.type == "cuda" or args.compile:
        variants.append(("bf16 + compile", "bf16", True))
    results = {"device": f"{device} ({describe_device(device)})", "torch": torch.__version__, "variants": {}}
    for name, precision, compiled in variants:
        model = load(args.weights, device, precision, args.preset)
        if compiled:
            model.compile_encoders()
        with torch.inference_mode():
            outputs = [
                model.score_padded(ref_padded[i : i + 32], dist_padded[i : i + 32]) for i in range(0, args.pairs, 32)
            ]
        scores = torch.cat([output.score.float().cpu() for output in outputs])
        gated = torch.cat([output.gated.cpu() for output in outputs])
        difference = (scores - expected).abs()
        entry = {
            "max_abs_diff": float(difference.max()),
            "mean_abs_diff": float(difference.mean()),
            "gate_flips": int((gated != expected_gated).sum()),
            "gated_in_reference": int(expected_gated.sum()),
            "speed": [],
        }
        for cached in (False, True):
            cache = ReferenceCache(model) if cached else None
            for batch in args.batch_sizes:
                entry["speed"].append(
                    {"cached_references": cached, **time_variant(model, cache, device, batch, args.repeats)}
                )
        results["variants"][name] = entry
        del model
        print(
            f"{name}: max |diff| {entry['max_abs_diff']:.5f}, mean {entry['mean_abs_diff']:.5f}, "
            f"gate flips {entry['gate_flips']} of {args.pairs} pairs ({entry['gated_in_reference']} gated in fp32)"
        )
        for row in entry["speed"]:
            memory = f", peak {row['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in row else ""
            label = "dist images/s (cached refs)" if row["cached_references"] else "pairs/s"
            value = row["dist_images_per_s"] if row["cached_references"] else row["pairs_per_s"]
            print(f"  batch {row['batch']:>4}: {value:9.2f} {label}{memory}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
