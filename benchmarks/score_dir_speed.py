"""Speed of `semantic-iqa score-dir` (the local engine) and of its resume, on generated folders.

Three measurements, each through the real command (`semantic_iqa.cli.main`, in this process):

1. pairs/s with the tiny random model on `--pairs` small pairs (64x48 PNG references,
   blurred JPEG distortions: decoding and writing cost what they cost for real);
2. with `--full`: pairs/s with full-size random weights (the reference architecture's
   sizes) on `--full-pairs` pairs;
3. the time to skip `--skip-pairs` pairs already done: a result file holding every pair
   (written with `ResultWriter`, with the true input signatures and model fingerprint,
   so no scoring is needed to set it up) is resumed; every pair is skipped.

Each model first scores a few pairs untimed (CUDA start-up, kernel selection); the
full-size model is reported both cold (its first job in the process) and warm. "job s" is
the engine's own wall time (the summary's `wall_time_s`: fingerprint, column
probe, input signatures, reading done rows, scoring, writing); "command s" adds loading
the model and listing the folders. Run:

    python benchmarks/score_dir_speed.py --device cpu --workers 2
    python benchmarks/score_dir_speed.py --device cuda --full --batch-size 32
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from semantic_iqa.cli import main as cli
from semantic_iqa.cli.parser import DEFAULT_WORKERS
from semantic_iqa.devices import describe_device, resolve_device
from semantic_iqa.jobs import ResultWriter, input_signature, job_items, result_columns, weights_fingerprint
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model, make_tiny
from semantic_iqa.registry import create_metric, metric_info

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "ref.png"


def make_pairs(root: Path, count: int, *, distinct: bool = True) -> tuple[Path, Path]:
    """`count` pairs under root/R (PNG) and root/D (JPEG); `distinct=False` repeats one pair's bytes (fast)."""
    ref_dir, dist_dir = root / "R", root / "D"
    ref_dir.mkdir(parents=True)
    dist_dir.mkdir(parents=True)
    photo = Image.open(PHOTO).convert("RGB")
    encoded: tuple[bytes, bytes] | None = None
    for index in range(count):
        if distinct or encoded is None:
            ref = photo.rotate(index * 0.7).resize((64, 48))
            buffers = io.BytesIO(), io.BytesIO()
            ref.save(buffers[0], "PNG")
            ref.filter(ImageFilter.GaussianBlur(index % 4)).save(buffers[1], "JPEG", quality=90)
            encoded = buffers[0].getvalue(), buffers[1].getvalue()
        (ref_dir / f"{index:06d}.png").write_bytes(encoded[0])
        (dist_dir / f"{index:06d}.jpg").write_bytes(encoded[1])
    return ref_dir, dist_dir


def run_command(ref: Path, dist: Path, out: Path, weights: Path, args: argparse.Namespace, *extra: str) -> dict:
    """Run score-dir; returns its summary plus the command's own wall time."""
    summary = out.with_suffix(".summary.json")
    argv = ["score-dir", str(ref), str(dist), "--out", str(out), "--weights", str(weights)]
    argv += ["--device", args.device, "--precision", args.precision]
    argv += ["--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    start = time.perf_counter()
    status = cli([*argv, "--json", str(summary), *extra])
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"score-dir exited with {status}")
    return {**json.loads(summary.read_text()), "command_s": wall}


def row(case: str, pairs: int, result: dict, args: argparse.Namespace) -> str:
    what = "pairs skipped/s" if result["skipped"] == pairs else "pairs/s"
    job = result["wall_time_s"]
    return (
        f"| {case} | {pairs} | {args.batch_size} | {args.workers} | {result['command_s']:.2f} | {job:.2f} "
        f"| {pairs / job:,.0f} {what} |"
    )


def fake_done_result(out: Path, ref: Path, dist: Path, weights: Path, args: argparse.Namespace) -> None:
    """A result file with every pair done, as a finished run leaves it (scores are placeholders)."""
    info = metric_info("dss_sqa")
    metric = create_metric("dss_sqa", weights, device=args.device)
    items = job_items(info, folders=[ref, dist]).items
    job = {"metric": "dss_sqa", "weights": str(weights), "revision": None, "options": {}}
    with ResultWriter(
        out, result_columns(info, metric, {}), weights_fingerprint(weights, precision=args.precision), job=job
    ) as writer:
        writer.write(
            [
                {**item, "score": 1.0, "status": "ok", "input_signature": input_signature(item, ["ref", "dist"])}
                for item in items
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="backbone precision")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs for the tiny-model run")
    parser.add_argument("--full", action="store_true", help="also run full-size random weights")
    parser.add_argument("--full-pairs", type=int, default=100)
    parser.add_argument("--skip-pairs", type=int, default=10000, help="done pairs skipped by the resume run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--workdir", help="where to generate the folders (default: a temporary folder)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(
        f"device: {device} ({describe_device(device)}), {args.precision}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        tiny = make_tiny(root / "tiny", seed=0)
        lines = ["| case | pairs | batch | workers | command s | job s | rate |", "|---|---|---|---|---|---|---|"]

        warm = make_pairs(root / "warm", 2 * args.batch_size)
        ref, dist = make_pairs(root / "small", args.pairs)
        run_command(*warm, root / "warm-tiny.csv", tiny, args)  # first CUDA calls, kernel choice: not timed
        lines.append(row("tiny model", args.pairs, run_command(ref, dist, root / "tiny.csv", tiny, args), args))
        parquet = run_command(ref, dist, root / "tiny.parquet", tiny, args)
        lines.append(row("tiny model, Parquet out", args.pairs, parquet, args))

        if args.full:
            full = build_random_model("full", seed=0).save_pretrained(root / "full")
            ref, dist = make_pairs(root / "few", args.full_pairs)
            first = run_command(ref, dist, root / "full-first.csv", full, args)
            lines.append(row("full-size random weights, first run of the process", args.full_pairs, first, args))
            result = run_command(ref, dist, root / "full.csv", full, args)
            lines.append(row("full-size random weights, warm", args.full_pairs, result, args))

        ref, dist = make_pairs(root / "many", args.skip_pairs, distinct=False)
        start = time.perf_counter()
        job_items(metric_info("dss_sqa"), folders=[ref, dist])
        listing = time.perf_counter() - start
        for suffix in (".csv", ".parquet"):
            out = root / f"done{suffix}"
            fake_done_result(out, ref, dist, tiny, args)
            result = run_command(ref, dist, out, tiny, args, "--resume")
            assert result["skipped"] == args.skip_pairs, result
            lines.append(row(f"resume, all done ({suffix[1:]})", args.skip_pairs, result, args))
        print("\n".join(lines))
        print(f"listing and pairing the {args.skip_pairs:,} pairs' folders: {listing:.2f} s")


if __name__ == "__main__":
    main()
