"""pyiqa: `create_metric('dss_sqa')` after `import semantic_iqa`, distorted first, same numbers."""

from __future__ import annotations

import importlib.metadata
import os

import pytest
import torch
from conftest import run_python

import semantic_iqa
from semantic_iqa.integrations.pyiqa import ARCH_NAME, register

pyiqa = pytest.importorskip("pyiqa")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    ref = torch.rand(3, 3, 48, 64)
    dist = (ref * 0.6 + 0.2 * torch.rand_like(ref)).clamp(0, 1)
    return ref, dist


def test_listed_with_its_properties():
    assert "dss_sqa" in pyiqa.list_models() and "dss_sqa_soft" in pyiqa.list_models(metric_mode="FR")
    config = pyiqa.default_model_configs.DEFAULT_CONFIGS["dss_sqa"]
    assert (config["metric_mode"], config["lower_better"], config["score_range"]) == ("FR", False, "0, 5")


def test_distorted_first_in_pyiqa_equals_reference_first_here(tiny_dir, images):
    ref, dist = images
    metric = pyiqa.create_metric("dss_sqa", weights=str(tiny_dir), device="cpu")
    ours = semantic_iqa.score(ref, dist, weights=tiny_dir, device="cpu")
    theirs = metric(dist, ref)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    swapped = metric(ref, dist)
    assert not torch.allclose(swapped, theirs, atol=0.05), "the metric is asymmetric: order matters"
    assert metric.lower_better is False


def test_keyword_arguments_reach_the_model(tiny_dir, images):
    ref, dist = images
    off = pyiqa.create_metric("dss_sqa", weights=str(tiny_dir), gate="off", device="cpu")
    assert off.net.gate == "off"
    expected = semantic_iqa.score(ref, dist, weights=tiny_dir, device="cpu", gate="off")
    torch.testing.assert_close(off(dist, ref), expected, rtol=0, atol=1e-5)
    soft = pyiqa.create_metric("dss_sqa_soft", weights=str(tiny_dir), device="cpu")
    assert soft.net.gate == "soft"


def test_registration_is_idempotent_and_keeps_builtins():
    before = dict(pyiqa.default_model_configs.DEFAULT_CONFIGS)
    register()
    register()
    assert pyiqa.default_model_configs.DEFAULT_CONFIGS == before
    assert pyiqa.utils.registry.ARCH_REGISTRY.get(ARCH_NAME).__name__ == "SemanticIQADSSSQA"
    assert "lpips" in before and before["lpips"]["metric_opts"]["type"] != ARCH_NAME


def test_entry_point_is_declared():
    points = importlib.metadata.entry_points(group="pyiqa.archs")
    assert any(p.value == "semantic_iqa.integrations.pyiqa:register" for p in points)


def test_fresh_process_import_semantic_iqa_then_create_metric(tiny_dir, tmp_path):
    code = (
        "import torch, semantic_iqa, pyiqa; "
        f"m = pyiqa.create_metric('dss_sqa', weights=r'{tiny_dir}', device='cpu'); "
        "print('OK', m(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).shape)"
    )
    result = run_python(code, {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert "OK torch.Size([1])" in result.stdout


def test_core_works_without_pyiqa(tiny_dir):
    """A process where pyiqa cannot be imported still imports and scores."""
    code = (
        "import sys; sys.modules['pyiqa'] = None; import torch, semantic_iqa; "
        f"print('SCORE', semantic_iqa.score(torch.rand(3, 20, 20), torch.rand(3, 20, 20), weights=r'{tiny_dir}'))"
    )
    result = run_python(code, dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "SCORE" in result.stdout
