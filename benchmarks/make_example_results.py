"""Regenerate docs/figures/data/benchmark_results.json: an example benchmark run, for the docs.

    python benchmarks/make_example_results.py [--out docs/figures/data/benchmark_results.json]

It runs `benchmarks/run.py` on CPU on synthetic data only, in a temporary folder:

- LoViF: the test suite's synthetic training split (`tests/lovif_synthetic.py`: crops of the
  sample photograph `examples/ref.png`, blurred and noised, integer labels 0..5 driven by the
  strength of the degradation), 24 pairs;
- BAPPS: a synthetic `2afc/val/<subset>` layout (`make_synthetic_bapps` below): 64 px crops of
  the same photograph, two blurred versions each, and a `judge` that favours the less blurred;
- DSS-SQA: a `make-tiny` model (seed 0), i.e. RANDOM WEIGHTS;
- baselines: piq's SSIM, PSNR, LPIPS-VGG and DISTS, the last two with `--random-baselines`;
- speed: random 64 px pairs at batch sizes 1, 2, 4, 8, five timing rounds of 0.1 s per point,
  on one CPU thread.

Every figure in it is therefore a plumbing check, not a result, and every row that is random
is flagged so (`random_weights`); the plots drawn from it say so in their titles. It exists
so that `docs/figures/make.py` can draw the docs' example figures with
`benchmarks.plots.plot_all` without running the benchmark. Timings differ from run to run,
and the temporary paths are replaced by `<tmp>`; nothing else of this machine is recorded
beyond what run.py records (package versions, device, git commit).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # lovif_synthetic: the test suite's LoViF layout maker

from benchmarks import run as harness  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "figures" / "data" / "benchmark_results.json"


def make_synthetic_bapps(root: Path, photo: Image.Image, triplets: int = 8, seed: int = 0) -> Path:
    """BAPPS 2AFC val layout: per subset, `triplets` 64 px reference crops, p0 and p1 blurred by
    random amounts, and judge = the fraction of (imaginary) people who found p1 closer: high
    when p0 is the more blurred, with some noise. Returns `root`."""
    rng = np.random.default_rng(seed)
    for subset in harness.BAPPS_SUBSETS:
        folder = root / "2afc" / "val" / subset
        for part in ("ref", "p0", "p1", "judge"):
            (folder / part).mkdir(parents=True)
        for index in range(triplets):
            name = f"{index:06d}"
            left, top = (int(v) for v in rng.integers(0, photo.width - 64, 2))
            ref = photo.crop((left, top, left + 64, top + 64))
            blur0, blur1 = (float(v) for v in rng.uniform(0.3, 3.0, 2))
            ref.save(folder / "ref" / f"{name}.png")
            ref.filter(ImageFilter.GaussianBlur(blur0)).save(folder / "p0" / f"{name}.png")
            ref.filter(ImageFilter.GaussianBlur(blur1)).save(folder / "p1" / f"{name}.png")
            judge = 1 / (1 + np.exp(-2.0 * (blur0 - blur1))) + rng.normal(0, 0.1)
            np.save(folder / "judge" / f"{name}.npy", np.array([float(np.clip(judge, 0, 1))]))
    return root


def make_example_results(out: Path = DEFAULT_OUT) -> dict:
    from lovif_synthetic import make_lovif

    from semantic_iqa.metrics.dss_sqa.tiny import make_tiny

    # One thread: on a shared machine, several threads per op spin against other processes and
    # single timings swing by an order of magnitude; one thread keeps the example's spread modest.
    torch.set_num_threads(1)
    photo = Image.open(ROOT / "examples" / "ref.png").convert("RGB")
    with tempfile.TemporaryDirectory() as temporary:
        tmp = Path(temporary)
        make_lovif(tmp / "LoViF", photo, pairs=24)
        make_synthetic_bapps(tmp / "BAPPS", photo)
        weights = make_tiny(tmp / "tiny", seed=0)
        # run.py writes report.md, results.json and the plots there; only the JSON is kept.
        results = harness.main(
            [
                *("--lovif", str(tmp / "LoViF"), "--bapps", str(tmp / "BAPPS"), "--out", str(tmp / "results")),
                *("--weights", str(weights), "--device", "cpu", "--random-baselines"),
                *("--speed-batch-sizes", "1", "2", "4", "8", "--speed-size", "64"),
                *("--repeats", "5", "--speed-min-time", "0.1"),
            ]
        )
        text = json.dumps(results, indent=2).replace(str(tmp), "<tmp>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    return json.loads(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    results = make_example_results(args.out)
    print(f"wrote {args.out} ({len(results['metrics'])} metric rows, {len(results.get('speed', []))} speed points)")


if __name__ == "__main__":
    main()
