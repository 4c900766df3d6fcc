"""How long `import semantic_iqa` and `semantic-iqa --help` take, each in a fresh process.

Targets: `import semantic_iqa` at most `import torch` + 0.5 s (both measured here, in the
same run), and `semantic-iqa --help` and every subcommand's `--help` at most 1 s. Also
timed: interpreter start-up (`pass`), `import pyiqa`, and both packages in either order (the
difference from `import pyiqa` is what importing this package and registering with pyiqa
cost). The cases are run round-robin, after one unrecorded warm-up round, so a slow spell of
the machine hits them all alike.
Run:

    python benchmarks/import_time.py [--repeats 5] [--json FILE]

The help is run through the `semantic-iqa` console script next to this interpreter (what a
user types), or `python -m semantic_iqa.cli` where there is none. It prints one line per case
(median, min, max in seconds) and a PASS/FAIL line per target; the exit status is 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMPORT_MARGIN_S = 0.5  # `import semantic_iqa` may take this much longer than `import torch`
HELP_LIMIT_S = 1.0  # any `--help`


def command_prefix() -> list[str]:
    """The `semantic-iqa` console script of this interpreter's environment, else `python -m semantic_iqa.cli`."""
    script = Path(sys.executable).parent / ("semantic-iqa.exe" if os.name == "nt" else "semantic-iqa")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "semantic_iqa.cli"]


def subcommands() -> list[str]:
    from semantic_iqa.cli import build_parser  # torch-free: what --help itself builds

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def cases() -> dict[str, list[str]]:
    python = [sys.executable, "-c"]
    found = {
        "python (start-up only)": [*python, "pass"],
        "import torch": [*python, "import torch"],
        "import semantic_iqa": [*python, "import semantic_iqa"],
        "import pyiqa": [*python, "import pyiqa"],
        "import semantic_iqa; import pyiqa": [*python, "import semantic_iqa; import pyiqa"],
        "import pyiqa; import semantic_iqa": [*python, "import pyiqa; import semantic_iqa"],
    }
    prefix = command_prefix()
    found["semantic-iqa --help"] = [*prefix, "--help"]
    for name in subcommands():
        found[f"semantic-iqa {name} --help"] = [*prefix, name, "--help"]
    return found


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def measure(all_cases: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in all_cases}
    for round_ in range(repeats + 1):
        for label, argv in all_cases.items():
            elapsed = run_once(argv)
            if round_ > 0:  # round 0 warms the file cache and writes byte code
                times[label].append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each case (default 5)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    all_cases = cases()
    if importlib.util.find_spec("pyiqa") is None:
        print("pyiqa is not installed: its cases are skipped")
        all_cases = {label: command for label, command in all_cases.items() if "pyiqa" not in label}
    times = measure(all_cases, args.repeats)
    median = {label: statistics.median(values) for label, values in times.items()}

    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU(s), {args.repeats} timed runs per case")
    print(f"{'case':45s} {'median':>8s} {'min':>8s} {'max':>8s}  (seconds, fresh process each)")
    for label, values in times.items():
        print(f"{label:45s} {median[label]:8.3f} {min(values):8.3f} {max(values):8.3f}")

    torch_s, ours_s = median["import torch"], median["import semantic_iqa"]
    print(f"\nimport semantic_iqa - import torch = {ours_s - torch_s:+.3f} s (ratio {ours_s / torch_s:.2f})")
    if "import pyiqa" in median:
        for label in ("import semantic_iqa; import pyiqa", "import pyiqa; import semantic_iqa"):
            cost = median[label] - median["import pyiqa"]
            print(f"{label} - import pyiqa = {cost:+.3f} s (our import + registration)")

    verdicts = []
    ok = ours_s <= torch_s + IMPORT_MARGIN_S
    verdicts.append(ok)
    print(
        f"{'PASS' if ok else 'FAIL'}: import semantic_iqa {ours_s:.3f} s <= import torch {torch_s:.3f} s "
        f"+ {IMPORT_MARGIN_S} s"
    )
    helps = {label: value for label, value in median.items() if label.endswith("--help")}
    slowest = max(helps, key=helps.__getitem__)
    ok = helps[slowest] <= HELP_LIMIT_S
    verdicts.append(ok)
    print(
        f"{'PASS' if ok else 'FAIL'}: every --help <= {HELP_LIMIT_S} s ({len(helps)} commands; "
        f"slowest median {helps[slowest]:.3f} s, {slowest})"
    )
    if args.json:
        summary = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "repeats": args.repeats,
            "times_s": times,
            "median_s": median,
            "pass": all(verdicts),
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
