"""The fused feature: block order, width and values, computed independently here."""

from __future__ import annotations

import torch

from semantic_iqa.metrics.dss_sqa.fusion import fuse_features


def test_fusion_blocks_in_reference_order():
    torch.manual_seed(0)
    s_r, s_d = torch.randn(3, 768), torch.randn(3, 768)
    c_r, c_d = torch.randn(3, 1024), torch.randn(3, 1024)
    fused, cosine = fuse_features(s_r, s_d, c_r, c_d)
    assert fused.shape == (3, 5377)

    cos = (c_r * c_d).sum(1) / (c_r.norm(dim=1) * c_d.norm(dim=1))
    blocks = [
        (0, 768, s_r),
        (768, 1536, s_d),
        (1536, 2304, (s_r - s_d).abs()),
        (2304, 3328, c_r),
        (3328, 4352, (c_r - c_d).abs()),
        (4352, 5376, (c_r / c_r.norm(dim=1, keepdim=True)) * (c_d / c_d.norm(dim=1, keepdim=True))),
        (5376, 5377, cos[:, None]),
    ]
    for start, end, expected in blocks:
        torch.testing.assert_close(fused[:, start:end], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cosine, cos)


def test_raw_distorted_semantic_feature_is_not_included():
    s = torch.zeros(1, 4)
    c_r = torch.ones(1, 6)
    c_d = torch.full((1, 6), 7.0)
    fused, _ = fuse_features(s, s, c_r, c_d)
    assert fused.shape == (1, 3 * 4 + 3 * 6 + 1)
    assert not (fused == 7.0).any()
