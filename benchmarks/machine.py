"""What the benchmarks say about the CPU they ran on: its model name and the flags speed depends on."""

from __future__ import annotations

from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")
VECTOR_FLAGS = ("avx2", "fma", "avx512f", *NATIVE_BF16_FLAGS)


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """{"cpu": model name, "flags": the `VECTOR_FLAGS` present, "native_bf16": AMX or AVX512-BF16 present}.

    "unknown CPU" and no flags where `cpuinfo` cannot be read (not Linux).
    """
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return {"cpu": "unknown CPU (no /proc/cpuinfo)", "flags": [], "native_bf16": False}
    fields = [line.partition(":") for line in lines]
    model = next((value.strip() for key, _, value in fields if key.strip() == "model name"), "unknown CPU")
    flags = set(next((value.split() for key, _, value in fields if key.strip() == "flags"), []))
    return {
        "cpu": model,
        "flags": [flag for flag in VECTOR_FLAGS if flag in flags],
        "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
    }
