"""Throughput of MST-CLIPIQA at the reference sizes (CLIP ViT-B/32 + ViT-B/16, and for
variant B the CLIP text model), with random weights: speed does not depend on them.

Inputs are decoded 224x224 float tensors (variant B: one 20-word prompt per image), so the
figure is the model's cost: crop, both image towers, fusion, head (B: tokenising and the
text tower too). Run:

    python benchmarks/mst_speed.py --device cpu --batch-sizes 1 16

Also prints the trainable parameter counts (the reference: 722,561 for variant A).
"""

from __future__ import annotations

import argparse
import functools

import torch

from semantic_iqa.devices import describe_device, resolve_device
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa
from semantic_iqa.timing import time_call

PROMPT = "a photorealistic portrait of an old fisherman mending a red net on a wooden pier at golden hour"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--variants", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device} ({describe_device(device)}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| variant | trainable parameters | batch | images/s | s/image | peak host MiB |")
    print("|---|---|---|---|---|---|")
    for variant in args.variants:
        model = build_random_mst_clipiqa(variant, "full", seed=0).to(device).eval()
        for batch in args.batch_sizes:
            images = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch)).to(device)
            prompts = [PROMPT] * batch if variant == "B" else None
            call = functools.partial(model, images, prompts)
            timing = time_call(call, device, warmup=args.warmup, repeats=args.repeats)
            print(
                f"| {variant} | {model.num_trainable_parameters():,} | {batch} | {batch / timing.median_s:.2f} "
                f"| {timing.median_s / batch:.3f} | {timing.peak_host_mib:.0f} |"
            )


if __name__ == "__main__":
    main()
