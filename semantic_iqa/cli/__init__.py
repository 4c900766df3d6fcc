"""The `semantic-iqa` command: the plumbing every metric shares.

Commands: `score` and `score-dir` (any metric, `--metric NAME`), `metrics`, `download`,
`info`, `make-tiny`, `train` (the metric's own recipe), and each metric's converter, which
its sub-package adds (`semantic_iqa.metrics.<name>.commands`). Errors a user can fix (bad
files, options, weights) exit with status 2 and one line on stderr, never a traceback; Ctrl-C
exits with status 130 and one line (`exit_codes` lists every status). Library calls print
no weight-loading bars themselves; huggingface_hub's download bars stay.

Building the parser imports no torch, timm or transformers (`semantic-iqa --help` is quick);
each command imports what it needs when it runs. `tests/test_imports.py` keeps it so.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from ..errors import SemanticIQAError
from . import exit_codes
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `semantic-iqa` command; returns the exit status (`exit_codes`).

    Ctrl-C, in any command, ends it with one line and status 130 (128 + SIGINT), as shells
    report it: the `KeyboardInterrupt`'s message, when a command gives one, says what was
    kept (e.g. score-dir's rows saved and how to resume). Warnings are one line each too.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning_as_one_line
        try:
            args = build_parser().parse_args(argv)  # `--help` and usage errors end here: nothing heavy is imported
            return args.handler(args)
        except (SemanticIQAError, OSError) as exc:  # OSError: unwritable output, disk full, ...
            print(f"semantic-iqa: error: {exc}", file=sys.stderr)
            return exit_codes.ERROR
        except KeyboardInterrupt as stop:
            print(f"semantic-iqa: interrupted{f': {stop}' if str(stop) else ''}", file=sys.stderr)
            return exit_codes.INTERRUPTED


def _show_warning_as_one_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """`semantic-iqa: warning: ...` on stderr, not Python's `file:line: UserWarning:` and source line."""
    print(f"semantic-iqa: warning: {' '.join(str(message).split())}", file=sys.stderr)
