"""Reading `torch.save` checkpoints safely: `torch.load(weights_only=True)` unless trusted.

A checkpoint of tensors, dicts, lists, strings and numbers loads with PyTorch's restricted
unpickler, which runs no code. Anything else (numpy scalars, custom classes, code) needs the
full unpickler, which runs whatever the file holds: only with an explicit opt-in.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import ConversionError


def load_checkpoint(path: Path, *, trust_pickle: bool = False, trust_option: str | None = None) -> Any:
    """`torch.load` on CPU: safely (tensors and plain data only) unless the caller trusts the file.

    Args:
        path: the checkpoint.
        trust_pickle: unpickle in full (runs any code stored in the file).
        trust_option: how the user opts in (e.g. "--trust-pickle"), named in the refusal;
            `None` when the caller offers no such option.

    Raises:
        ConversionError: missing or unreadable file, or one the safe loader refuses.
    """
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        if trust_pickle or not _looks_like_torch_save(path):
            raise ConversionError(f"cannot read {path} as a torch checkpoint: {reason}") from None
        # A real torch file whose pickle names other Python objects: numpy scalars, custom
        # classes, or code.
        advice = (
            f"Only if you trust this file, use {trust_option}, which unpickles it in full and runs any code "
            "stored in it"
            if trust_option
            else "it holds objects other than tensors, which only the full unpickler (able to run code stored "
            "in the file) would read: re-save it as a plain state_dict of tensors"
        )
        raise ConversionError(
            f"{path} does not load with the safe loader (torch.load weights_only=True): {reason}. {advice}"
        ) from None
    except Exception as exc:  # zip or storage errors: not a readable checkpoint
        raise ConversionError(f"cannot read {path} as a torch checkpoint: {_first_line(str(exc))}") from None


def _looks_like_torch_save(path: Path) -> bool:
    """A `torch.save` file is a zip archive (or, in the legacy format, starts with a pickle protocol opcode)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as file:
        return file.read(1) == pickle.PROTO


def _unpickling_reason(exc: Exception) -> str:
    """The first line of why torch's unpickler refused a file, without its advice or colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    # torch puts its reason after this marker, below generic advice about weights_only=False.
    text = text.split("WeightsUnpickler error:", 1)[-1]
    line = _first_line(text)
    return line.split(". Please use", 1)[0]  # drop the add_safe_globals advice that follows


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no reason given")
