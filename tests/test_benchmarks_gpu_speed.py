"""benchmarks/gpu_speed.py on the CPU at tiny size: every variant's accuracy figures, gate flips included."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu_speed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_variant_reports_its_differences_and_gate_flips_against_fp32(tmp_path) -> None:
    out = tmp_path / "speed.json"
    gpu_speed.main(
        [
            "--device",
            "cpu",
            "--preset",
            "tiny",
            "--pairs",
            "12",
            "--batch-sizes",
            "2",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    variants = json.loads(out.read_text())["variants"]
    assert set(variants) == {"fp32", "bf16"}
    exact = variants["fp32"]
    assert (exact["max_abs_diff"], exact["gate_flips"]) == (0.0, 0)
    assert 0 < exact["gated_in_reference"] < 12  # the pairs exercise the gate both ways
    bf16 = variants["bf16"]
    assert 0 < bf16["mean_abs_diff"] <= bf16["max_abs_diff"]
    # A flipped hard gate moves a score by most of the 0-5 range; bf16 alone by far less.
    assert (bf16["max_abs_diff"] > 2) == (bf16["gate_flips"] > 0)
    assert [row["cached_references"] for row in bf16["speed"]] == [False, True]
