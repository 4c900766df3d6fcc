"""Where a forward's CPU time goes: matrix products, attention, and everything else (torch.profiler)."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

# aten operators whose self time is a matrix product (linear layers reach addmm/mm; the patch
# embedding reaches a convolution).
MATRIX_PRODUCTS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution")


def _group(name: str) -> str:
    if name in MATRIX_PRODUCTS or "linear" in name and name.startswith("mkldnn"):
        return "matrix products"
    if "attention" in name:
        return "attention"
    return "other"


def profile_shares(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], top: int = 6) -> dict[str, float]:
    """Shares (summing to 1) of self CPU time per group over one forward, plus the `top` largest other ops.

    The shares are keyed "matrix products", "attention" and "other"; the largest other operators
    follow as "other: NAME" keys (their shares are included in "other").
    """
    with torch.inference_mode():
        model(*inputs)  # warm-up outside the profile
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            model(*inputs)
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    shares = {"matrix products": 0.0, "attention": 0.0, "other": 0.0}
    for event in events:
        shares[_group(event.key)] += event.self_cpu_time_total / total
    others = sorted((e for e in events if _group(e.key) == "other"), key=lambda e: -e.self_cpu_time_total)
    for event in others[:top]:
        shares[f"other: {event.key}"] = event.self_cpu_time_total / total
    return shares
