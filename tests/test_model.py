"""The whole model on a tiny random checkpoint, against an independent computation in this file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from test_heads import reference_head

from semantic_iqa import DSSSQA
from semantic_iqa.errors import InvalidInputError, InvalidOptionError, WeightsFormatError

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def pairs(photo):
    """Reference/distorted PIL pairs of varied sizes and kinds of change."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (160, 240, 3), dtype=np.uint8))
    refs = [photo, photo, photo.resize((300, 180)), photo, noise, photo.crop((0, 0, 90, 200))]
    dists = [
        photo.filter(ImageFilter.GaussianBlur(2)),
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        photo.resize((120, 120)),  # a different size than its reference
        noise,
        photo,
        photo.crop((0, 0, 90, 200)).rotate(90, expand=True),
    ]
    return refs, dists


def hand_pixels(images: list[Image.Image]) -> torch.Tensor:
    """Reference preprocessing, written out: longer side to 224, bicubic, centre on black, normalise."""
    out = torch.zeros(len(images), 3, 224, 224)
    for i, image in enumerate(images):
        w, h = image.size
        nw, nh = max(1, round(w * 224 / max(w, h))), max(1, round(h * 224 / max(w, h)))
        resized = np.asarray(image.convert("RGB").resize((nw, nh), Image.Resampling.BICUBIC), dtype=np.float32) / 255
        top, left = (224 - nh) // 2, (224 - nw) // 2
        out[i, :, top : top + nh, left : left + nw] = torch.from_numpy(resized).permute(2, 0, 1)
    return (out - CLIP_MEAN) / CLIP_STD


def independent_scores(model: DSSSQA, refs, dists, mode: str, low: float, high: float):
    """Scores computed without the package's fusion, heads, gate or ensemble code."""
    with torch.no_grad():
        xr, xd = hand_pixels(refs), hand_pixels(dists)
        s_r = model.structure.model.forward_features(xr)[:, 0]
        s_d = model.structure.model.forward_features(xd)[:, 0]
        clip = model.semantic.model
        c_r = clip(pixel_values=F.interpolate(xr, size=(336, 336), mode="bilinear", align_corners=False)).pooler_output
        c_d = clip(pixel_values=F.interpolate(xd, size=(336, 336), mode="bilinear", align_corners=False)).pooler_output
        cos = F.cosine_similarity(c_r, c_d, dim=1)
        n_r, n_d = c_r / c_r.norm(dim=1, keepdim=True), c_d / c_d.norm(dim=1, keepdim=True)
        fused = torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), n_r * n_d, cos[:, None]], dim=1)
        fold_scores = []
        for fold in range(model.config.num_folds):
            logits = reference_head(model.heads, fold).eval()(fused)
            for i, c in enumerate(cos.tolist()):
                if mode != "off" and c < low:
                    logits[i] = -12.0
                    logits[i, 0] = 12.0
                elif mode == "soft" and c < high:
                    delta = 6.0 * (high - c) / (high - low)
                    logits[i, 0] += delta
                    logits[i, 1:] -= delta
            fold_scores.append((logits.softmax(dim=1) * torch.arange(6.0)).sum(dim=1))
        fold_scores = torch.stack(fold_scores, dim=1)
    return fold_scores.mean(dim=1), fold_scores, cos


def gate_thresholds_around(cosines: torch.Tensor) -> tuple[float, float]:
    """Thresholds that put some pairs below `low`, some in the soft band and some above."""
    ordered = sorted(cosines.tolist())
    low = (ordered[1] + ordered[2]) / 2
    high = (ordered[3] + ordered[4]) / 2
    return low, high


@pytest.mark.parametrize("mode", ["hard", "soft", "off"])
def test_model_matches_independent_computation(tiny_model, pairs, mode):
    refs, dists = pairs
    _, _, cos = independent_scores(tiny_model, refs, dists, "off", 0.4, 0.5)
    assert cos.max() - cos.min() > 0.05, "the tiny model must give varied cosines"
    low, high = gate_thresholds_around(cos)
    model = DSSSQA(
        tiny_model.config.with_gate(low=low, high=high), tiny_model.structure, tiny_model.semantic, tiny_model.heads
    ).eval()
    output = model.predict(refs, dists, gate=mode, batch_size=4)
    score, fold_scores, cos = independent_scores(model, refs, dists, mode, low, high)
    torch.testing.assert_close(output.cos_sim, cos, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.fold_scores, fold_scores, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.score, score, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.score, output.fold_scores.mean(dim=1))
    torch.testing.assert_close(output.fold_std, output.fold_scores.std(dim=1))
    assert output.fold_scores.shape == (len(refs), 5)
    expected_gated = {"hard": cos < low, "soft": cos < high, "off": torch.zeros_like(cos, dtype=torch.bool)}[mode]
    assert torch.equal(output.gated, expected_gated)
    if mode != "off":
        assert output.gated.any() and (output.score[cos < low] < 1e-6).all()


def test_training_mode_never_gates(tiny_model, pairs):
    refs, dists = pairs
    model = DSSSQA(
        tiny_model.config.with_gate(low=0.999, high=0.9999), tiny_model.structure, tiny_model.semantic, tiny_model.heads
    )
    assert model.eval().predict(refs, dists).gated.all()
    heads_state = {k: v.clone() for k, v in model.heads.state_dict().items()}
    try:
        model.train()
        assert not model.structure.training and not model.semantic.training, "backbones stay frozen in eval mode"
        # Dropout is on in training mode; the same seed draws the same masks, so the default
        # (hard) gate must give exactly what gate="off" gives.
        with torch.random.fork_rng():
            torch.manual_seed(0)
            out = model.predict(refs, dists, batch_size=len(refs))
            torch.manual_seed(0)
            ungated = model.predict(refs, dists, gate="off", batch_size=len(refs))
        assert not out.gated.any()
        assert torch.equal(out.score, ungated.score)
        # A gated pair scores 5.7e-10 here; these ungated training-mode scores measured 1.2-3.2.
        assert (out.score > 0.5).all()
    finally:
        model.heads.load_state_dict(heads_state)  # training-mode BatchNorm moved the shared running stats
        model.eval()


def test_one_backbone_pass_per_batch_serves_all_folds(tiny_model, pairs):
    refs, dists = pairs
    calls = {"structure": 0, "semantic": 0}

    def count(name: str) -> None:
        calls[name] += 1

    hooks = [
        tiny_model.structure.model.patch_embed.register_forward_hook(lambda *_: count("structure")),
        tiny_model.semantic.model.register_forward_hook(lambda *_: count("semantic")),
    ]
    try:
        tiny_model.predict(refs, dists, batch_size=4)
    finally:
        for hook in hooks:
            hook.remove()
    batches = math.ceil(len(refs) / 4)
    assert tiny_model.config.num_folds == 5
    assert calls == {"structure": batches, "semantic": batches}


def test_deterministic(tiny_model, pairs):
    refs, dists = pairs
    first = tiny_model.predict(refs, dists)
    second = tiny_model.predict(refs, dists, batch_size=1)
    # Batch composition changes float rounding only: measured 7e-7 at most. Mixing up pairs
    # or batch statistics leaking between them would move scores by about the spread between
    # pairs (0 to 2.8 here).
    torch.testing.assert_close(first.score, second.score, rtol=0, atol=1e-5)
    assert torch.equal(tiny_model.predict(refs, dists).score, first.score)


def test_forward_keeps_gradients_for_the_distorted_image_only(tiny_model, photo):
    ref = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float().div(255)[None]
    dist = (ref * 0.8).requires_grad_(True)
    output = tiny_model(ref, dist)
    output.score.sum().backward()
    assert dist.grad is not None and torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_model.structure.parameters())
    assert all(p.grad is None for p in tiny_model.semantic.parameters())
    tiny_model.zero_grad(set_to_none=True)


def test_tensor_path_and_pil_path_agree_closely(tiny_model, photo):
    ref = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float().div(255)
    dist = torch.from_numpy(np.asarray(photo.filter(ImageFilter.GaussianBlur(3))).copy()).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        tensor_path = tiny_model(ref, dist).score
    pil_path = tiny_model.predict(photo, photo.filter(ImageFilter.GaussianBlur(3))).score
    # The paths differ by PIL rounding to uint8 (<= ~1/255 per pixel): measured 0.027 on this
    # pair. Plausible mistakes in the torch path measured much larger: one pixel off centre
    # 0.27, bilinear instead of bicubic 0.26, no antialiasing 0.15.
    torch.testing.assert_close(tensor_path, pil_path, rtol=0, atol=0.08)


def test_model_errors(tiny_model, pairs):
    refs, dists = pairs
    with pytest.raises(InvalidInputError, match="6 reference image"):
        tiny_model.predict(refs, dists[:2])
    with pytest.raises(InvalidOptionError, match="batch_size"):
        tiny_model.predict(refs, dists, batch_size=0)
    with pytest.raises(InvalidOptionError, match="gate mode"):
        tiny_model.predict(refs, dists, gate="strict")
    with pytest.raises(WeightsFormatError, match="feature sizes"):
        DSSSQA(
            tiny_model.config.__class__(**{**tiny_model.config.__dict__, "structure_dim": 99}),
            tiny_model.structure,
            tiny_model.semantic,
        )


def test_bf16_backbones_keep_float32_heads_and_stay_close(tiny_dir, pairs):
    refs, dists = pairs
    reference = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    fast = DSSSQA.from_pretrained(tiny_dir, device="cpu", precision="bf16")
    assert (reference.precision, fast.precision) == ("fp32", "bf16")
    assert fast.heads.linear1_weight.dtype == torch.float32
    # Gate off: a gated pair scores ~0 at either precision and would hide the difference.
    out32, out16 = reference.predict(refs, dists, gate="off"), fast.predict(refs, dists, gate="off")
    assert out16.score.dtype == torch.float32
    # Measured on these pairs: bf16 moves scores by 0.021-0.043, while the pairs' scores spread
    # over 1.08. The tolerance sits between; real figures: benchmarks/gpu_speed.py.
    tolerance = 0.1
    assert out32.score.max() - out32.score.min() > 5 * tolerance, "pairs must differ more than bf16 noise"
    assert (out32.score - out16.score).abs().max() < tolerance
    with pytest.raises(InvalidOptionError, match="unknown precision"):
        fast.set_precision("fp8")


def as_float_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


# Largest score change from storing the pairs' pixels in each dtype, measured (gate off):
# float16 0.013 (pixel error up to 2.4e-4), bfloat16 0.050 (pixel error up to 1.9e-3).
HALF_TOLERANCES = {torch.float16: 0.03, torch.bfloat16: 0.12}


@pytest.mark.parametrize("dtype", list(HALF_TOLERANCES), ids=str)
def test_half_tensors_score_like_their_float32_version(tiny_model, pairs, dtype):
    refs = [as_float_tensor(image) for image in pairs[0]]
    dists = [as_float_tensor(image) for image in pairs[1]]
    full = tiny_model.predict(refs, dists, gate="off").score
    half = tiny_model.predict([r.to(dtype) for r in refs], [d.to(dtype) for d in dists], gate="off").score
    # Preprocessing runs in float32, where every half value is exact: the half tensors score
    # exactly as their float32 copies do, and differ from the originals by quantisation only.
    quantised = [[image.to(dtype).float() for image in images] for images in (refs, dists)]
    assert torch.equal(half, tiny_model.predict(*quantised, gate="off").score)
    tolerance = HALF_TOLERANCES[dtype]
    assert full.max() - full.min() > 5 * tolerance, "pairs must differ more than the quantisation error"
    assert (half - full).abs().max() < tolerance


@pytest.mark.parametrize("dtype", list(HALF_TOLERANCES), ids=str)
def test_gradients_reach_a_half_distorted_image(tiny_model, photo, dtype):
    ref = as_float_tensor(photo).to(dtype)[None]
    dist = (ref * 0.8).detach().requires_grad_(True)
    tiny_model(ref, dist).score.sum().backward()
    assert dist.grad is not None and dist.grad.dtype == dtype
    assert torch.isfinite(dist.grad).all() and dist.grad.float().abs().sum() > 0
    tiny_model.zero_grad(set_to_none=True)
