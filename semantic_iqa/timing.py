"""Timing a call as the benchmarks report it: warm-up, repetitions, median, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Median seconds per call, the process's peak resident memory so far, and peak GPU memory."""

    median_s: float
    peak_host_mib: float
    peak_gpu_mib: float | None


def time_call(function: Callable[[], object], device: torch.device, *, warmup: int = 1, repeats: int = 3) -> Timing:
    """Run `function` `warmup + repeats` times under inference mode; time the last `repeats`.

    On CUDA the device is synchronised around each call, and peak memory is counted from
    this call on.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    with torch.inference_mode():
        for step in range(warmup + repeats):
            _synchronise(device)
            start = time.perf_counter()
            function()
            _synchronise(device)
            if step >= warmup:
                seconds.append(time.perf_counter() - start)
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    # Linux reports ru_maxrss in KiB.
    return Timing(statistics.median(seconds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, peak_gpu)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
