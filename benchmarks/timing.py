"""Speed: every metric on the same random pairs, timed round-robin with torch.utils.benchmark (run.py's speed table)."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from benchmarks.bench_metric import BenchMetric
from semantic_iqa.inputs import load_padded
from semantic_iqa.metric import Metric
from semantic_iqa.reference_cache import ReferenceCache


# -- speed ---------------------------------------------------------------------------------
def run_speed(
    metrics: list[BenchMetric],
    device: torch.device,
    batch_sizes: list[int],
    *,
    size: int = 224,
    rounds: int = 5,
    min_time: float = 0.2,
) -> list[dict]:
    """Every metric on the same random `size` px pairs; DSS-SQA also with cached references.

    Each point (metric, batch size) gets one warm-up call, then `rounds` measurements with
    `torch.utils.benchmark.Timer.blocked_autorange(min_run_time=min_time)`, taken round-robin
    over all points, so that a slow spell of a shared machine hits every point alike instead
    of the few measured during it. A round's figure is the median over its blocks; rows keep
    the median, quartiles and extremes over the rounds, in seconds per call and in pairs/s.
    """
    model = metrics[0].model
    cache = ReferenceCache(model)
    variants = [(m.name, m.random_weights, m.score_tensors) for m in metrics]
    variants.append(
        (
            "DSS-SQA, cached references",
            metrics[0].random_weights,
            lambda r, d: model.score_padded(_pad(r, model), _pad(d, model), reference_cache=cache).score,
        )
    )
    points = []
    for batch in batch_sizes:
        generator = torch.Generator().manual_seed(batch)
        ref = torch.rand(batch, 3, size, size, generator=generator).to(device)
        dist = (ref * 0.9).clamp(0, 1)
        for name, random, function in variants:
            points.append(SpeedPoint(name, random, batch, partial(function, ref, dist)))
    for point in points:
        point.warm_up(device)
    for _ in range(max(1, rounds)):
        for point in points:
            point.measure(device, min_time)
    return [point.row(size) for point in points]


@dataclass
class SpeedPoint:
    """One (metric, batch size) of the speed table and the rounds measured so far."""

    metric: str
    random_weights: bool
    batch: int
    function: Callable[[], object]
    seconds: list[float] = field(default_factory=list)  # per call, one median per round
    calls: int = 0
    peak_host_mib: float = 0.0
    peak_gpu_mib: float | None = None

    def _call(self) -> None:
        with torch.inference_mode():
            self.function()

    def warm_up(self, device: torch.device) -> None:
        self._call()  # lazy initialisation, caches, kernel selection
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        # The process's peak resident memory so far (Linux reports ru_maxrss in KiB).
        self.peak_host_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def measure(self, device: torch.device, min_time: float) -> None:
        from torch.utils import benchmark

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # Timer synchronises CUDA around its blocks; it defaults to one thread, so ask for what torch uses.
        timer = benchmark.Timer(stmt="call()", globals={"call": self._call}, num_threads=torch.get_num_threads())
        measurement = timer.blocked_autorange(min_run_time=min_time)
        self.seconds.append(float(measurement.median))
        self.calls += measurement.number_per_run * len(measurement.raw_times)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            self.peak_gpu_mib = max(self.peak_gpu_mib or 0.0, peak)

    def row(self, size: int) -> dict:
        seconds = np.asarray(self.seconds)
        throughput = self.batch / seconds
        row = {
            "metric": self.metric,
            "random_weights": self.random_weights,
            "batch": self.batch,
            "size": size,
            "samples": len(seconds),  # rounds
            "calls": self.calls,  # timed calls over all rounds
            "pairs_per_s": float(np.median(throughput)),
            "pairs_per_s_q1": float(np.percentile(throughput, 25)),
            "pairs_per_s_q3": float(np.percentile(throughput, 75)),
            "pairs_per_s_min": float(throughput.min()),
            "pairs_per_s_max": float(throughput.max()),
            "s_per_call": float(np.median(seconds)),
            "s_per_call_q1": float(np.percentile(seconds, 25)),
            "s_per_call_q3": float(np.percentile(seconds, 75)),
            "s_per_image": float(np.median(seconds)) / (2 * self.batch),
            "peak_host_mib": self.peak_host_mib,
        }
        if self.peak_gpu_mib is not None:
            row["peak_gpu_mib"] = self.peak_gpu_mib
        return row


def _pad(images: torch.Tensor, model: Metric) -> torch.Tensor:
    return torch.stack([load_padded(image, model.config.preprocess.image_size) for image in images])
