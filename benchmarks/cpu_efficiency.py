"""How close each metric's pipeline runs to this machine's matrix-product ceiling, in one process.

    python benchmarks/cpu_efficiency.py                                   # every metric, fp32 and bf16, batch 1 and 8
    python benchmarks/cpu_efficiency.py --metrics dss_sqa --precisions fp32 --profile
    python benchmarks/cpu_efficiency.py --preset tiny --repeats 1 --json out.json   # the smoke run the tests use

1. The ceiling: square matrix products (`torch.mm`) at a few sizes, fp32 and bf16, best of
   several; measured before and after the pipelines, the best of both kept (the spread between
   the two says how quiet the machine was).
2. Each metric at full size with random weights (speed does not depend on them), on decoded
   224x224 tensors: one warm-up, median of the repetitions, as items (pairs or images) per second.
3. The FLOPs of one item, counted by torch's `FlopCounterMode` over one forward of the model as
   its config builds it (every matrix product, convolution and attention; the CPU flash-attention
   kernel is registered with torch's own SDPA formula, which the counter lacks). Achieved FLOP/s
   over the ceiling of the same precision is the fraction of the ceiling.

`--profile` adds, per metric and precision at the largest batch, where the time goes: matrix
products, attention and everything else (torch.profiler, self CPU time).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils import flop_counter

from benchmarks.efficiency_profile import profile_shares
from benchmarks.machine import cpu_facts
from semantic_iqa.timing import time_call

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
MATMUL_SIZES = (512, 1024, 2048, 4096)


def _build(metric: str, preset: str) -> torch.nn.Module:
    if metric == "dss_sqa":
        from semantic_iqa.metrics.dss_sqa.tiny import build_random_model

        return build_random_model(preset)
    if metric == "mst_clipiqa":
        from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

        return build_random_mst_clipiqa("A", preset, seed=0)
    if metric == "dreamsim":
        from semantic_iqa.metrics.dreamsim.tiny import build_random_dreamsim

        return build_random_dreamsim("ensemble", preset, seed=0)
    raise SystemExit(f"unknown metric {metric!r}")


def _inputs(metric: str, batch: int) -> tuple[torch.Tensor, ...]:
    """Decoded 224x224 images in [0, 1]: a (reference, distorted) pair for the full-reference metrics."""
    ref = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
    return (ref,) if metric == "mst_clipiqa" else (ref, (ref * 0.9).clamp(0, 1))


def cpu_description() -> dict[str, object]:
    """The CPU model, its vector and bf16 flags, and the torch settings the figures depend on."""
    return {
        **cpu_facts(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def matmul_ceiling(
    dtype: torch.dtype, sizes: tuple[int, ...] = MATMUL_SIZES, repeats: int = 5, budget_s: float = 5.0
) -> dict[int, float]:
    """Best GFLOP/s of an n x n by n x n product (2 n^3 FLOPs) for each n, over up to `repeats` calls.

    A size stops repeating once it has spent `budget_s`: without native bf16 instructions a bf16
    product runs ~100x slower than fp32, and one 4096^3 call would take minutes.
    """
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a[:64], b)  # warm-up: thread pool, kernel choice
        best, spent = float("inf"), 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            seconds = time.perf_counter() - start
            best, spent = min(best, seconds), spent + seconds
            if spent > budget_s:
                break
        rates[n] = 2 * n**3 / best / 1e9
    return rates


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _register_cpu_attention() -> None:
    operator = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if operator not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(operator, get_raw=False)(_sdpa_cpu_flops)


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of the matrix products, convolutions and attention that `call` runs (torch's FlopCounterMode)."""
    _register_cpu_attention()
    with torch.inference_mode(), flop_counter.FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def flops_per_item(model: torch.nn.Module, metric: str) -> int:
    """FLOPs of one item (pair or image) through `model`, counted over a batch-1 forward."""
    inputs = _inputs(metric, 1)
    return count_flops(lambda: model(*inputs))


def measure_pipeline(
    model: torch.nn.Module,
    metric: str,
    precision: str,
    batch: int,
    repeats: int,
    flops: int,
    ceiling: float,
    compiled: bool = False,
) -> dict[str, object]:
    """Items/s at `batch` (median of `repeats` after one warm-up, whose time is kept) and the fraction of
    `ceiling` GFLOP/s."""
    inputs = _inputs(metric, batch)
    start = time.perf_counter()
    with torch.inference_mode():
        model(*inputs)  # the warm-up: with compile, this call compiles for the batch's shape
    first_call_s = time.perf_counter() - start
    timing = time_call(lambda: model(*inputs), torch.device("cpu"), warmup=0, repeats=repeats)
    items_per_s = batch / timing.median_s
    achieved = items_per_s * flops / 1e9
    return {
        "metric": metric,
        "precision": precision,
        "batch": batch,
        "compiled": compiled,
        "first_call_s": first_call_s,
        "items_per_s": items_per_s,
        "gflop_per_item": flops / 1e9,
        "achieved_gflops": achieved,
        "ceiling_gflops": ceiling,
        "fraction_of_ceiling": achieved / ceiling,
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    """Ceiling, then every (metric, precision, batch), then the ceiling again; every figure in one dict."""
    before = {
        name: matmul_ceiling(PRECISIONS[name], tuple(args.sizes), args.matmul_repeats) for name in args.precisions
    }
    ceilings = {name: max(rates.values()) for name, rates in before.items()}
    rows, profiles = [], {}
    for metric in args.metrics:
        base = _build(metric, args.preset).eval()
        for precision in args.precisions:
            model = base.set_precision(precision)
            flops = flops_per_item(model, metric)  # eager: the counter does not trace compiled code
            if args.compile:
                model.compile_encoders()
            for batch in args.batch_sizes:
                figures = (batch, args.repeats, flops, ceilings[precision], args.compile)
                rows.append(measure_pipeline(model, metric, precision, *figures))
                print(_row(rows[-1]), flush=True)
            if args.profile:
                profiles[f"{metric} {precision}"] = profile_shares(model, _inputs(metric, max(args.batch_sizes)))
        del base
    after = {name: matmul_ceiling(PRECISIONS[name], tuple(args.sizes), args.matmul_repeats) for name in args.precisions}
    final = {name: max(max(before[name].values()), max(after[name].values())) for name in args.precisions}
    for row in rows:  # the fraction against the best ceiling seen in the whole run
        row["ceiling_gflops"] = final[row["precision"]]
        row["fraction_of_ceiling"] = row["achieved_gflops"] / row["ceiling_gflops"]
    return {
        "environment": cpu_description(),
        "preset": args.preset,
        "matmul_gflops": {"before": before, "after": after},
        "ceiling_gflops": final,
        "pipelines": rows,
        "profiles": profiles,
    }


def _row(row: dict) -> str:
    precision = f"{row['precision']} + compile" if row["compiled"] else row["precision"]
    return (
        f"| {row['metric']} | {precision} | {row['batch']} | {row['first_call_s']:.1f} | {row['items_per_s']:.3f} "
        f"| {row['gflop_per_item']:.1f} | {row['achieved_gflops']:.1f} | {row['ceiling_gflops']:.1f} "
        f"| {100 * row['fraction_of_ceiling']:.0f} % |"
    )


def report(results: dict[str, object]) -> str:
    """The Markdown the docs show: environment, ceilings, one row per (metric, precision, batch)."""
    env = results["environment"]
    lines = [
        f"CPU: {env['cpu']}; flags {' '.join(env['flags'])}; native bf16: {'yes' if env['native_bf16'] else 'no'}; "
        f"torch {env['torch']} ({env['cpu_capability']}), {env['threads']} threads; "
        f"random weights, {results['preset']} size",
        "",
        "| precision | n = "
        + " | n = ".join(str(n) for n in next(iter(results["matmul_gflops"]["before"].values())))
        + " | (GFLOP/s of an n^3 product: before / after the pipelines) |",
        "|---|" + "---|" * (len(next(iter(results["matmul_gflops"]["before"].values()))) + 1),
    ]
    for name in results["ceiling_gflops"]:
        before, after = results["matmul_gflops"]["before"][name], results["matmul_gflops"]["after"][name]
        cells = " | ".join(f"{before[n]:.0f} / {after[n]:.0f}" for n in before)
        lines.append(f"| {name} | {cells} | |")
    lines += [
        "",
        "| metric | precision | batch | first call s | items/s | GFLOP/item | GFLOP/s | ceiling GFLOP/s | fraction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(row) for row in results["pipelines"]]
    if "bf16" in results["ceiling_gflops"] and not env["native_bf16"]:
        lines.append(
            "\nNo native bf16 on this CPU: a bf16 `torch.mm` takes torch's reference kernel, so the bf16 "
            "ceiling and fractions here say nothing of a CPU with AMX or AVX512-BF16."
        )
    for name, shares in results["profiles"].items():
        parts = ", ".join(f"{group} {100 * share:.0f} %" for group, share in shares.items())
        lines.append(f"\nWhere the time goes, {name}, largest batch: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=["dss_sqa", "mst_clipiqa", "dreamsim"])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--preset", default="full", choices=("full", "tiny"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(MATMUL_SIZES))
    parser.add_argument("--matmul-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the frozen encoders (Metric.compile_encoders)"
    )
    parser.add_argument("--profile", action="store_true", help="where the time goes at the largest batch")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
