"""Backbone precision and compilation: `resolve_precision` ("auto" -> what the device does natively)
and `EncoderPrecision`, the mixin of `Metric` that casts (`set_precision`) and compiles
(`compile_encoders`) its frozen encoders. Nothing here names a metric.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

import torch

from .devices import resolve_device
from .errors import InvalidOptionError

if TYPE_CHECKING:
    from torch import nn

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("fp32", "bf16", "auto")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's

# An override of the CPU probe, read at each resolution: "1" = this CPU multiplies bf16 matrices
# natively, "0" = it does not, unset = probe. Why an environment variable: the probe reads CPU
# flags (torch's private checks, or /proc/cpuinfo), which a VM or container may hide or a future
# CPU may name otherwise; the variable lets a user or a fleet's configuration state the answer
# without code, and lets the tests take both branches on any machine without mocking torch.
NATIVE_BF16_ENV = "SEMANTIC_IQA_NATIVE_BF16"
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of AMX-BF16 and AVX512-BF16

_Self = TypeVar("_Self", bound="EncoderPrecision")


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """The backbone precision `precision` means on `device`: "fp32" or "bf16", never "auto".

    "fp32" (the default everywhere: exact to the method, and the same on every machine) and
    "bf16" pass through. "auto" picks "bf16" where `device` multiplies bf16 matrices natively
    (a CUDA GPU of compute capability 8.0 or newer; a CPU with AMX or AVX512-BF16, or where
    `$SEMANTIC_IQA_NATIVE_BF16` is 1) and "fp32" everywhere else (other CPUs, MPS).
    `device` as for `resolve_device` (`None`/"auto": CUDA if available, else CPU).

    Raises:
        InvalidOptionError: another precision (the message lists the choices), an unknown
            device, or a `$SEMANTIC_IQA_NATIVE_BF16` other than 0 or 1.
    """
    if isinstance(precision, str) and precision in PRECISIONS:
        return precision
    if precision != "auto":
        raise InvalidOptionError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    target = resolve_device(device)
    if target.type == "cuda":
        with torch.cuda.device(target):  # the capability of that GPU, not of the current one
            native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = target.type == "cpu" and _cpu_has_native_bf16()
    return "bf16" if native else "fp32"


def _cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 matrix products in hardware: `$SEMANTIC_IQA_NATIVE_BF16`, else a probe."""
    override = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if override:
        if override not in ("0", "1"):
            raise InvalidOptionError(
                f"{NATIVE_BF16_ENV}={override!r}: set it to 1 (this CPU has native bf16), 0 (it has not), "
                "or unset it to let precision auto probe the CPU"
            )
        return override == "1"
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(callable(probe) for probe in probes):
        return any(probe() for probe in probes)
    return _flags_have_native_bf16(_cpuinfo_flags())  # torch's probes moved: read the flags ourselves


def _flags_have_native_bf16(flags: set[str]) -> bool:
    """Whether a set of /proc/cpuinfo flags names a native bf16 matrix unit (AMX-BF16 or AVX512-BF16)."""
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def _cpuinfo_flags() -> set[str]:
    """The first CPU's flags in /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    except OSError:
        return set()


def check_compile(mode: str | None, device: torch.device) -> None:
    """Refuse, before anything compiles, a `torch.compile` mode it lacks, or inductor on a CPU without a C++ compiler.

    Inductor compiles CPU kernels with a C++ compiler (`$CXX`, else g++); without one the first
    call would fail deep in torch, after the tracing, so the check is made here.
    """
    if mode not in COMPILE_MODES:
        modes = ", ".join(str(choice) for choice in COMPILE_MODES)
        raise InvalidOptionError(f"unknown torch.compile mode {mode!r}; choose one of {modes}")
    if device.type != "cpu":
        return
    try:  # torch's own search for the compiler (a private module: where it moved, the first call tells)
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise InvalidOptionError(
            "compile: torch.compile (inductor) needs a C++ compiler on the CPU and found none ($CXX, else g++); "
            "install one (e.g. apt install g++) or score without compile"
        ) from None


class EncoderPrecision:
    """Mixin of `Metric`: the precision and compilation of its frozen encoders (`frozen_encoders`)."""

    if TYPE_CHECKING:  # provided by `Metric`

        def frozen_encoders(self) -> dict[str, nn.Module]: ...

        @property
        def device(self) -> torch.device: ...

    @property
    def precision(self) -> str:
        """Backbone precision: "fp32" or "bf16", never "auto" (the heads always run in float32).

        "fp32" for a metric without frozen encoders: nothing of it runs in another precision.
        """
        tensors = (t for encoder in self.frozen_encoders().values() for t in encoder.parameters())
        dtype = next(tensors, torch.empty(0)).dtype
        return {value: key for key, value in PRECISIONS.items()}.get(dtype, str(dtype))

    def set_precision(self: _Self, precision: str) -> _Self:
        """Run the frozen encoders in "fp32", "bf16" or "auto" (`resolve_precision` on the metric's
        device: bf16 where that device does it natively); the trained parts stay in float32. Returns self.
        """
        dtype = PRECISIONS[resolve_precision(precision, self.device)]
        for encoder in self.frozen_encoders().values():
            encoder.to(dtype)
        return self

    def compile_encoders(self: _Self, mode: str | None = None) -> _Self:
        """`torch.compile` each frozen encoder in place (`nn.Module.compile`: the same tensors and state_dict keys).

        Off unless called. Each new input shape compiles on its first call (seconds on a GPU, up
        to minutes on a CPU; a last, smaller batch compiles again); `mode` is torch.compile's.
        Inductor on the CPU needs a C++ compiler: `InvalidOptionError` here without one. Returns self.
        """
        check_compile(mode, self.device)
        for encoder in self.frozen_encoders().values():
            encoder.compile(mode=mode)
        return self
