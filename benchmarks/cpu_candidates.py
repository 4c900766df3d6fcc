"""Each CPU speed-up candidate timed on its own, at the shapes DSS-SQA's semantic tower runs, in one process.

    python benchmarks/cpu_candidates.py [--batch 8] [--precision fp32] [--repeats 5] [--json out.json]

The semantic tower (CLIP ViT-L/14 at 336 px) is ~91 % of a DSS-SQA pair's FLOPs: 24 blocks of
577 tokens, width 1024, MLP 4096, 16 heads; a batch of B pairs sends 2B images through it.
Per candidate, the same work two ways (best of `--repeats`), and what that saves per pair
when multiplied by how often the pipeline runs it. That saving is the prediction; the
pipeline's own before/after (`cpu_efficiency.py`) is the outcome.

- fused QKV: three 1024->1024 projections (transformers' CLIP) against one 1024->3072;
- attention: SDPA's CPU flash kernel against the math path;
- QuickGELU MLP: eager against `torch.compile` (inductor fuses the activation's three passes),
  with the compile's warm-up time;
- patch embedding: NCHW against channels-last;
- threads: a block-sized product on 1 thread against all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.cpu_efficiency import PRECISIONS, cpu_description

TOKENS, WIDTH, HIDDEN, HEADS, LAYERS, PATCH, SIZE = 577, 1024, 4096, 16, 24, 14, 336


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """Best wall time of `call` over `repeats`, after one warm-up, without autograd."""
    with torch.inference_mode():
        call()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, before: float, after: float, per_pair: float, note: str = "") -> dict[str, object]:
    return {
        "candidate": name,
        "before_ms": 1e3 * before,
        "after_ms": 1e3 * after,
        "speedup": before / after,
        "saved_s_per_pair": (before - after) * per_pair,
        "note": note,
    }


def candidates(batch: int, dtype: torch.dtype, repeats: int) -> list[dict[str, object]]:
    """Before/after rows; `per_pair` turns one call's saving into a saving per pair of the pipeline."""
    images = 2 * batch
    per_pair = LAYERS / batch  # each of these runs once per block per batch
    tokens = torch.randn(images * TOKENS, WIDTH, dtype=dtype)
    q, k, v = (torch.nn.Linear(WIDTH, WIDTH).to(dtype) for _ in range(3))
    qkv = torch.nn.Linear(WIDTH, 3 * WIDTH).to(dtype)
    rows = [
        _row(
            "fused QKV",
            best_seconds(lambda: (q(tokens), k(tokens), v(tokens)), repeats),
            best_seconds(lambda: qkv(tokens), repeats),
            per_pair,
        )
    ]
    heads = torch.randn(images, HEADS, TOKENS, WIDTH // HEADS, dtype=dtype)

    def attention(backend: SDPBackend) -> Callable[[], object]:
        def call() -> object:
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(heads, heads, heads)

        return call

    rows.append(
        _row(
            "attention: flash (after) vs math (before)",
            best_seconds(attention(SDPBackend.MATH), repeats),
            best_seconds(attention(SDPBackend.FLASH_ATTENTION), repeats),
            per_pair,
        )
    )
    rows.append(_compiled_mlp(tokens, dtype, repeats, per_pair))
    rows.append(_channels_last(images, dtype, repeats, batch))
    rows.append(_threads(tokens, dtype, repeats, per_pair))
    return rows


def _compiled_mlp(tokens: torch.Tensor, dtype: torch.dtype, repeats: int, per_pair: float) -> dict[str, object]:
    fc1, fc2 = torch.nn.Linear(WIDTH, HIDDEN).to(dtype), torch.nn.Linear(HIDDEN, WIDTH).to(dtype)

    def mlp(x: torch.Tensor) -> torch.Tensor:
        hidden = fc1(x)
        return fc2(hidden * torch.sigmoid(1.702 * hidden))  # CLIP's QuickGELU

    eager = best_seconds(lambda: mlp(tokens), repeats)
    compiled = torch.compile(mlp)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(tokens)
    warm_up = time.perf_counter() - start
    after = best_seconds(lambda: compiled(tokens), repeats)
    return _row("QuickGELU MLP compiled", eager, after, per_pair, f"compile warm-up {warm_up:.1f} s")


def _channels_last(images: int, dtype: torch.dtype, repeats: int, batch: int) -> dict[str, object]:
    conv = torch.nn.Conv2d(3, WIDTH, PATCH, PATCH, bias=False).to(dtype)
    pixels = torch.randn(images, 3, SIZE, SIZE, dtype=dtype)
    before = best_seconds(lambda: conv(pixels), repeats)
    conv_last = conv.to(memory_format=torch.channels_last)
    pixels_last = pixels.contiguous(memory_format=torch.channels_last)
    after = best_seconds(lambda: conv_last(pixels_last), repeats)
    return _row("patch embedding channels-last", before, after, 1 / batch)


def _threads(tokens: torch.Tensor, dtype: torch.dtype, repeats: int, per_pair: float) -> dict[str, object]:
    fc1 = torch.nn.Linear(WIDTH, HIDDEN).to(dtype)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = best_seconds(lambda: fc1(tokens), repeats)
    finally:
        torch.set_num_threads(threads)
    every = best_seconds(lambda: fc1(tokens), repeats)
    return _row(
        f"threads: {threads} (after) vs 1 (before), MLP fc1", one, every, per_pair, f"scaling {one / every:.2f}x"
    )


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="pairs per batch (2x images through the tower)")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = candidates(args.batch, PRECISIONS[args.precision], args.repeats)
    env = cpu_description()
    print(f"CPU: {env['cpu']}; native bf16: {env['native_bf16']}; torch {env['torch']}, {env['threads']} threads")
    print(f"batch {args.batch} pairs, {args.precision}, best of {args.repeats}")
    print("| candidate | before ms | after ms | speed-up | saved s/pair | note |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['candidate']} | {row['before_ms']:.1f} | {row['after_ms']:.1f} | {row['speedup']:.2f}x "
            f"| {row['saved_s_per_pair']:+.3f} | {row['note']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "batch": args.batch, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
