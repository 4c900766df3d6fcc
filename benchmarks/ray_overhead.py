"""Ray's overhead on one node: the local engine against the Ray engine, same pairs, same machine, one run.

Four measurements, with the tiny random model on `--pairs` small generated pairs (64x48
PNG references, blurred JPEG distortions):

1. the local engine (`semantic_iqa.jobs.run_job`, as `score-dir` runs it: `--workers`
   decoding processes, torch on every core);
2. the Ray engine (`semantic_iqa.ray.run_ray_job`) on a fresh local Ray instance, images
   decoded in the scoring actors (what `decode="auto"` picks without GPUs);
3. the same with decoding in a CPU stage before the scoring actors (`decode="stage"`);
4. the cost of decoding one image (the metric's `image_transform`: decode, resize-pad to
   224 px, to float) on one core, the work a decode stage spreads over CPUs;
5. the stall check: Ray Data reading a Parquet manifest, then 2 scoring actors on a 2-CPU
   Ray instance (no CPU left for the read tasks), against 1 actor; a run that makes no
   progress for `--stall-timeout` seconds fails with Ray Data's `ExecutionTimeoutError`.

"total" is the job's wall time from the call to its summary: for Ray that includes starting
Ray and the actors (importing torch and the model code, ~8 s each) and stopping Ray.
"steady" is the rate between the first and the last batch of rows saved, with the start-up
left out. The ratio is local / Ray (how many times faster the local engine is). Run:

    python benchmarks/ray_overhead.py --pairs 2000
    python benchmarks/ray_overhead.py --pairs 2000 --json ray_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402
import ray.data  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

import semantic_iqa  # noqa: E402
from semantic_iqa.devices import describe_device  # noqa: E402
from semantic_iqa.jobs import job_items, run_job  # noqa: E402
from semantic_iqa.metrics.dss_sqa.tiny import make_tiny  # noqa: E402
from semantic_iqa.ray import PairScorer, init_local_ray, run_ray_job  # noqa: E402
from semantic_iqa.registry import create_metric, metric_info  # noqa: E402

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "ref.png"
DSS = metric_info("dss_sqa")


def make_pairs(root: Path, count: int) -> tuple[Path, Path]:
    """`count` distinct pairs: root/R/<i>.png (64x48) and root/D/<i>.jpg (blurred)."""
    ref_dir, dist_dir = root / "R", root / "D"
    ref_dir.mkdir(parents=True)
    dist_dir.mkdir(parents=True)
    photo = Image.open(PHOTO).convert("RGB")
    for index in range(count):
        ref = photo.rotate(index * 0.7).resize((64, 48))
        ref.save(ref_dir / f"{index:06d}.png")
        ref.filter(ImageFilter.GaussianBlur(index % 4)).save(dist_dir / f"{index:06d}.jpg", quality=90)
    return ref_dir, dist_dir


class RowClock:
    """An `on_rows` callback: when the first and the last batch of rows were saved."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def __call__(self, saved: int, total: int) -> None:
        now = time.perf_counter(), saved
        self.first = self.first or now
        self.last = now

    def steady_rate(self) -> float | None:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


def local_engine(items: list[dict], weights: Path, out: Path, args: argparse.Namespace) -> dict:
    model = create_metric("dss_sqa", weights, device="cpu")
    start = time.perf_counter()
    summary = run_job(
        DSS, model, items, out, batch_size=args.batch_size, workers=args.workers, progress=False, weights_folder=weights
    )
    total = time.perf_counter() - start
    return {
        "engine": "local",
        "total_s": total,
        "pairs_per_s": len(items) / total,
        "steady_pairs_per_s": None,
        **_ok(summary),
    }


def ray_engine(items: list[dict], weights: Path, out: Path, decode: str, args: argparse.Namespace) -> dict:
    clock = RowClock()
    start = time.perf_counter()
    summary = run_ray_job(
        DSS, str(weights), {}, items, out, batch_size=args.batch_size, progress=False, decode=decode, on_rows=clock
    )
    total = time.perf_counter() - start
    steady = clock.steady_rate()
    first_rows_s = clock.first[0] - start if clock.first else None
    return {
        "engine": f"ray (decode: {decode})",
        "total_s": total,
        "pairs_per_s": len(items) / total,
        "steady_pairs_per_s": steady,
        "first_rows_after_s": first_rows_s,
        **_ok(summary),
    }


def _ok(summary: dict) -> dict:
    return {"ok": summary["ok"], "failed": summary["failed"]}


def max_score_difference(first: Path, second: Path) -> float:
    scores = {row["id"]: row["score"] for row in pq.read_table(first, columns=["id", "score"]).to_pylist()}
    other = {row["id"]: row["score"] for row in pq.read_table(second, columns=["id", "score"]).to_pylist()}
    assert scores.keys() == other.keys()
    return max(abs(scores[key] - other[key]) for key in scores)


def decode_ms_per_image(items: list[dict], weights: Path, count: int = 200) -> float:
    """Milliseconds to decode and resize-pad one image with the metric's transform, on one core."""
    transform = create_metric("dss_sqa", weights, device="cpu").image_transform()
    paths = [item[column] for item in items[: count // 2] for column in ("ref", "dist")]
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        transform(paths[0])  # first call: imports and caches
        start = time.perf_counter()
        for path in paths:
            transform(path)
        return 1000 * (time.perf_counter() - start) / len(paths)
    finally:
        torch.set_num_threads(saved)


def stall_check(items: list[dict], weights: Path, root: Path, timeout_s: float) -> list[dict]:
    """Read a Parquet manifest with Ray Data, then score with 2 and with 1 actor(s) on 2 CPUs."""
    manifest = root / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist([{k: item[k] for k in ("id", "ref", "dist")} for item in items]), manifest)
    results = []
    init_local_ray(num_cpus=2)
    context = ray.data.DataContext.get_current()
    context.execution_no_progress_timeout_s = timeout_s
    context.enable_progress_bars = False
    try:
        for actors in (2, 1):
            dataset = ray.data.read_parquet(str(manifest)).map_batches(
                PairScorer,
                fn_constructor_kwargs={"metric": "dss_sqa", "weights": str(weights), "options": {}},
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1,
                batch_size=16,
                batch_format="numpy",
            )
            start = time.perf_counter()
            try:
                rows = sum(table.num_rows for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
                outcome = f"finished: {rows} rows"
            except Exception as exc:  # Ray Data's ExecutionTimeoutError (its module path moves between versions)
                outcome = f"stalled: {type(exc).__name__} after {time.perf_counter() - start:.0f} s without progress"
            results.append({"actors": actors, "cpus": 2, "outcome": outcome, "wall_s": time.perf_counter() - start})
            print(f"  {actors} actor(s) on 2 CPUs: {outcome}", flush=True)
    finally:
        ray.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="local engine decoders")
    parser.add_argument("--stall-pairs", type=int, default=200)
    parser.add_argument("--stall-timeout", type=float, default=60.0)
    parser.add_argument("--skip-stall-check", action="store_true")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        weights = make_tiny(root / "tiny", seed=0)
        ref_dir, dist_dir = make_pairs(root / "pairs", args.pairs)
        items = job_items(DSS, folders=[ref_dir, dist_dir]).items
        print(f"{len(items)} pairs, tiny model, batch size {args.batch_size}", flush=True)
        runs = [local_engine(items, weights, root / "local.parquet", args)]
        print(f"  local: {runs[-1]['pairs_per_s']:.1f} pairs/s", flush=True)
        for decode in ("actor", "stage"):
            runs.append(ray_engine(items, weights, root / f"ray-{decode}.parquet", decode, args))
            print(f"  ray, decode in {decode}: {runs[-1]['pairs_per_s']:.1f} pairs/s", flush=True)
        difference = max_score_difference(root / "local.parquet", root / "ray-actor.parquet")
        decode_ms = decode_ms_per_image(items, weights)
        stalls = (
            [] if args.skip_stall_check else stall_check(items[: args.stall_pairs], weights, root, args.stall_timeout)
        )

    local = runs[0]
    print(
        f"\ncpu: {describe_device(torch.device('cpu'))}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"ray {ray.__version__}, semantic-iqa {semantic_iqa.__version__}\n"
    )
    print("| engine | pairs | total s | pairs/s (total) | pairs/s (steady) | local / it, total | local / it, steady |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        steady = run["steady_pairs_per_s"]
        steady_text = f"{steady:.1f}" if steady else "-"
        ratio_steady = f"{local['pairs_per_s'] / steady:.2f}" if steady else "-"
        print(
            f"| {run['engine']} | {run['ok'] + run['failed']} | {run['total_s']:.1f} | {run['pairs_per_s']:.1f} | "
            f"{steady_text} | {local['pairs_per_s'] / run['pairs_per_s']:.2f} | {ratio_steady} |"
        )
    print(f"\nmax |score difference|, local vs Ray: {difference:.2e}")
    print(f"decoding one image on one core: {decode_ms:.2f} ms ({1000 / decode_ms:.0f} images/s)")
    if args.json:
        document = {
            "pairs": len(items),
            "batch_size": args.batch_size,
            "local_workers": args.workers,
            "runs": runs,
            "max_score_difference_local_vs_ray": difference,
            "decode_ms_per_image_one_core": decode_ms,
            "stall_check": stalls,
            "environment": {
                "cpu": describe_device(torch.device("cpu")),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "ray": ray.__version__,
                "semantic_iqa": semantic_iqa.__version__,
            },
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
