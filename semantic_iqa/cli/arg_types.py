"""The command line's shared option types and defaults.

Kept apart from `parser` (which imports the command modules to build the parser) so that the
command modules can use them without an import circle (see `.importlinter`, no-cycles).
"""

from __future__ import annotations

import argparse
import os


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
