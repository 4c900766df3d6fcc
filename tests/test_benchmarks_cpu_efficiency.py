"""benchmarks/cpu_efficiency.py: the FLOP count against the ViT formula, and the figures it derives."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from benchmarks import cpu_efficiency
from benchmarks.efficiency_profile import profile_shares

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def vit_flops(tokens: int, width: int, hidden: int, depth: int, patch: int) -> int:
    """Matrix-product FLOPs of a ViT image: patch embedding, then per block q, k, v, out, the MLP and attention."""
    patches = tokens - 1
    block = 8 * tokens * width**2 + 4 * tokens * width * hidden + 4 * tokens**2 * width
    return 2 * patches * 3 * patch**2 * width + depth * block


def test_flop_count_of_a_transformers_clip_tower_is_the_vit_formula() -> None:
    """Attention included: the CPU flash kernel is not in torch's counter until the benchmark registers it."""
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=48,
        patch_size=8,
        attn_implementation="sdpa",
    )
    tower = CLIPVisionModel(config).eval()
    images = torch.rand(1, 3, 48, 48)
    counted = cpu_efficiency.count_flops(lambda: tower(pixel_values=images))
    assert counted == vit_flops(tokens=37, width=32, hidden=80, depth=3, patch=8)


def test_flop_count_of_a_timm_vit_is_the_vit_formula() -> None:
    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, img_size=32, embed_dim=24, depth=2, num_heads=2, num_classes=0
    ).eval()
    counted = cpu_efficiency.count_flops(lambda: vit(torch.rand(1, 3, 32, 32)))
    assert counted == vit_flops(tokens=5, width=24, hidden=96, depth=2, patch=16)


def test_the_tiny_run_derives_every_figure_from_its_measurements(tmp_path) -> None:
    out = tmp_path / "efficiency.json"
    argv = ["--metrics", "dreamsim", "--precisions", "fp32", "bf16", "--preset", "tiny", "--repeats", "1"]
    cpu_efficiency.main(
        [*argv, "--batch-sizes", "1", "2", "--sizes", "64", "128", "--matmul-repeats", "2", "--json", str(out)]
    )
    results = json.loads(out.read_text())
    measured = results["matmul_gflops"]
    best = {
        name: max(*measured["before"][name].values(), *measured["after"][name].values()) for name in ("fp32", "bf16")
    }
    assert results["ceiling_gflops"] == best
    assert [(row["precision"], row["batch"]) for row in results["pipelines"]] == [
        ("fp32", 1),
        ("fp32", 2),
        ("bf16", 1),
        ("bf16", 2),
    ]
    model = cpu_efficiency._build("dreamsim", "tiny").eval()
    expected_flops = cpu_efficiency.flops_per_item(model, "dreamsim")
    assert expected_flops > 0
    for row in results["pipelines"]:
        assert row["gflop_per_item"] == pytest.approx(expected_flops / 1e9)
        assert row["achieved_gflops"] == pytest.approx(row["items_per_s"] * row["gflop_per_item"])
        assert row["fraction_of_ceiling"] == pytest.approx(row["achieved_gflops"] / best[row["precision"]])
    assert results["environment"]["threads"] == torch.get_num_threads()
    text = cpu_efficiency.report(results)
    assert "| dreamsim | fp32 | 2 |" in text
    assert ("No native bf16 on this CPU" in text) is not results["environment"]["native_bf16"]


def test_a_full_reference_item_counts_both_images() -> None:
    """One pair costs twice one image of the same towers: both images go through them."""
    model = cpu_efficiency._build("dreamsim", "tiny").eval()
    pair = cpu_efficiency.flops_per_item(model, "dreamsim")
    image = cpu_efficiency.count_flops(lambda: model.encode(torch.rand(1, 3, 224, 224)))
    assert pair == 2 * image


def test_profile_shares_group_the_self_time() -> None:
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, embed_dim=256, depth=1, num_heads=4).eval()
    shares = profile_shares(vit, (torch.rand(2, 3, 224, 224),))
    groups = shares["matrix products"] + shares["attention"] + shares["other"]
    assert groups == pytest.approx(1.0)
    assert shares["matrix products"] > shares["attention"] > 0
    assert sum(v for k, v in shares.items() if k.startswith("other: ")) <= shares["other"] + 1e-9
