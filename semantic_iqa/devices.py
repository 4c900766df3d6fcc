"""Device selection: "auto" picks CUDA when present, else CPU."""

from __future__ import annotations

import platform

import torch

from .errors import InvalidOptionError


def describe_device(device: torch.device) -> str:
    """A human-readable name: the GPU's model, or the CPU's model name from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/"auto" -> cuda if available else cpu; otherwise the named device, which must exist.

    Raises:
        InvalidOptionError: the name is not a device, or names a CUDA device this machine lacks.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidOptionError(f"unknown device {device!r} ({exc}); use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidOptionError(f"device {device!r} requested but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InvalidOptionError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError(f"device {device!r} requested but MPS is not available on this machine")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise InvalidOptionError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return resolved
