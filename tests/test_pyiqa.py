"""pyiqa: `create_metric('dss_sqa')` (distorted first) and `create_metric('mst_clipiqa')` (no reference)
after `import semantic_iqa`, with the same numbers as `semantic_iqa.create_metric`."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest
import torch
from conftest import hand_made_hub_cache, offline_env, run_python

import semantic_iqa
from semantic_iqa.integrations.pyiqa import ARCH_NAMES, FR_ARCH_NAME, NR_ARCH_NAME, register
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

pyiqa = pytest.importorskip("pyiqa")


@pytest.fixture(scope="module")
def mst_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MST-CLIPIQA variant-A weights folder (its scores spread over about 1-5)."""
    return build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "tiny-a")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    ref = torch.rand(3, 3, 48, 64)
    dist = (ref * 0.6 + 0.2 * torch.rand_like(ref)).clamp(0, 1)
    return ref, dist


def test_listed_with_its_properties():
    assert "dss_sqa" in pyiqa.list_models() and "dss_sqa_soft" in pyiqa.list_models(metric_mode="FR")
    assert "mst_clipiqa" in pyiqa.list_models(metric_mode="NR")
    configs = pyiqa.default_model_configs.DEFAULT_CONFIGS
    described = {
        name: (configs[name]["metric_mode"], configs[name]["lower_better"], configs[name]["score_range"])
        for name in ("dss_sqa", "dss_sqa_soft", "mst_clipiqa")
    }
    assert described["dss_sqa"] == described["dss_sqa_soft"] == ("FR", False, "0, 5")
    assert described["mst_clipiqa"] == ("NR", False, "1, 5")
    # The prompt-anchored variant needs a second input pyiqa's NR call cannot carry.
    assert "mst_clipiqa_prompt" not in configs


def test_arch_names_are_not_pyiqa_builtins():
    """pyiqa's registry is keyed by class name: a clash would silently replace a built-in arch."""
    archs = Path(pyiqa.__file__).parent / "archs"
    builtin_sources = "\n".join(path.read_text(encoding="utf-8") for path in archs.glob("*.py"))
    for name in ARCH_NAMES:
        assert f"class {name}" not in builtin_sources and f"'{name}'" not in builtin_sources, name
    configs = pyiqa.default_model_configs.DEFAULT_CONFIGS
    ours = {name for name, config in configs.items() if config["metric_opts"]["type"] in ARCH_NAMES}
    assert ours == {"dss_sqa", "dss_sqa_soft", "mst_clipiqa", "dreamsim"}


def test_no_reference_in_pyiqa_equals_create_metric_at_several_sizes(mst_dir):
    metric = pyiqa.create_metric("mst_clipiqa", weights=str(mst_dir), device="cpu")
    assert (metric.metric_mode, metric.lower_better, metric.score_range) == ("NR", False, "1, 5")
    ours = semantic_iqa.create_metric("mst_clipiqa", weights=mst_dir, device="cpu")
    generator = torch.Generator().manual_seed(0)
    for height, width in ((40, 56), (75, 31), (224, 224)):
        images = torch.rand(3, 3, height, width, generator=generator)
        images[1] = images[1] * 0.2  # a dark image
        images[2] = torch.linspace(0, 1, width).expand(3, height, width)  # a gradient
        theirs = metric(images)
        with torch.no_grad():
            expected = ours(images).score
        assert theirs.shape == (3,)
        torch.testing.assert_close(theirs, expected, rtol=0, atol=1e-5)
        # Different images must get clearly different scores, or equality above proves nothing
        # (measured spreads 0.44, 1.20 and 1.15).
        assert float(theirs.max() - theirs.min()) > 0.3, theirs


def test_no_reference_grayscale_equals_its_rgb_copy(mst_dir):
    metric = pyiqa.create_metric("mst_clipiqa", weights=str(mst_dir), device="cpu")
    gray = torch.rand(2, 1, 30, 44, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(metric(gray), metric(gray.expand(-1, 3, -1, -1)), rtol=0, atol=1e-6)


def test_dss_sqa_in_pyiqa_equals_create_metric_at_several_sizes(tiny_dir):
    metric = pyiqa.create_metric("dss_sqa", weights=str(tiny_dir), device="cpu")
    ours = semantic_iqa.create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    generator = torch.Generator().manual_seed(2)
    for height, width in ((48, 64), (81, 37)):
        ref = torch.rand(3, 3, height, width, generator=generator)
        dist = (ref * torch.tensor([0.9, 0.5, 0.1]).view(3, 1, 1, 1) + 0.05).clamp(0, 1)
        theirs = metric(dist, ref)
        with torch.no_grad():
            expected = ours(ref, dist).score
        torch.testing.assert_close(theirs, expected, rtol=0, atol=1e-5)
        assert float(theirs.max() - theirs.min()) > 0.3, theirs


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
    registry = pyiqa.utils.registry.ARCH_REGISTRY
    assert registry.get(FR_ARCH_NAME).__name__ == "SemanticIQAFullReference"
    assert registry.get(NR_ARCH_NAME).__name__ == "SemanticIQANoReference"
    assert "lpips" in before and before["lpips"]["metric_opts"]["type"] not in ARCH_NAMES


def test_entry_point_is_declared():
    points = importlib.metadata.entry_points(group="pyiqa.archs")
    assert any(p.value == "semantic_iqa.integrations.pyiqa:register" for p in points)


def test_fresh_process_no_reference_from_the_hub_cache_with_weights_and_revision(mst_dir, tmp_path):
    """weights= and revision= reach the model: a Hub id at revision "main" loads offline, another revision fails."""
    cache = tmp_path / "hub"
    hand_made_hub_cache(cache, "org/mst-tiny", mst_dir)
    code = (
        "import torch, semantic_iqa, pyiqa; "
        "m = pyiqa.create_metric('mst_clipiqa', weights='org/mst-tiny', revision='main', device='cpu'); "
        "print('OK', m(torch.rand(2, 3, 32, 48)).shape)\n"
        "try:\n"
        "    pyiqa.create_metric('mst_clipiqa', weights='org/mst-tiny', revision='v9', device='cpu')\n"
        "except semantic_iqa.WeightsError as exc:\n"
        "    print('REFUSED', type(exc).__name__)"
    )
    result = run_python(code, offline_env(cache))
    assert result.returncode == 0, result.stderr
    assert "OK torch.Size([2])" in result.stdout
    assert "REFUSED" in result.stdout, result.stdout


def test_core_works_without_pyiqa(tiny_dir):
    """A process where pyiqa cannot be imported still imports and scores."""
    code = (
        "import sys; sys.modules['pyiqa'] = None; import torch, semantic_iqa; "
        f"print('SCORE', semantic_iqa.score(torch.rand(3, 20, 20), torch.rand(3, 20, 20), weights=r'{tiny_dir}'))"
    )
    result = run_python(code, dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "SCORE" in result.stdout


def test_a_wrong_option_fails_at_create_metric_before_any_weights_are_read(tmp_path):
    """Not at the first call, minutes into an evaluation script; and not as "weights not found"."""
    from semantic_iqa.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="unknown gate mode 'medium'"):
        pyiqa.create_metric("dss_sqa", gate="medium", weights=tmp_path / "no-such-folder", device="cpu")
