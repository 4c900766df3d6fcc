"""The `semantic-iqa` command: the plumbing every metric shares.

Commands: `score` and `score-dir` (any metric, `--metric NAME`), `metrics`, `download`,
`info`, `make-tiny`, `train` (the metric's own recipe), and each metric's converter, which
its sub-package adds (`semantic_iqa.metrics.<name>.commands`). Errors a user can fix (bad
files, options, weights) exit with status 2 and one line on stderr, never a traceback.

Building the parser imports no torch, timm or transformers (`semantic-iqa --help` is quick);
each command imports what it needs when it runs. `tests/test_imports.py` keeps it so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import SemanticIQAError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `semantic-iqa` command; returns the exit status."""
    args = build_parser().parse_args(argv)  # `--help` and usage errors end here: nothing heavy is imported
    if getattr(args, "loads_models", True):
        _quiet_weight_loading()
    try:
        return args.handler(args)
    except (SemanticIQAError, OSError) as exc:  # OSError: unwritable output, disk full, ...
        print(f"semantic-iqa: error: {exc}", file=sys.stderr)
        return 2


def _quiet_weight_loading() -> None:
    """No per-tensor weight-loading bars from transformers: they would bury the command's output.

    Download bars (huggingface_hub's) stay: a first download of a backbone takes minutes. Only
    commands that load models pay for importing transformers here (`metrics` and `info` do not).
    """
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
