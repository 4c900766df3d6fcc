"""Fusion of reference and distorted features into one 5377-d vector (reference order)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fuse_features(
    structure_ref: torch.Tensor,
    structure_dist: torch.Tensor,
    semantic_ref: torch.Tensor,
    semantic_dist: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the DSS-SQA fusion blocks.

    Args:
        structure_ref: [B, Ds] structure (DINOv3 CLS) features of the references.
        structure_dist: [B, Ds] the same for the distorted images.
        semantic_ref: [B, Dc] semantic (CLIP pooled) features of the references.
        semantic_dist: [B, Dc] the same for the distorted images.

    Returns:
        fused: [B, 3*Ds + 3*Dc + 1], in this order: s_r, s_d, |s_r - s_d|, c_r, |c_r - c_d|,
            normalize(c_r) * normalize(c_d), cos(c_r, c_d). The raw c_d is NOT included:
            the normalised product replaces it.
        cosine: [B], cos(c_r, c_d) in [-1, 1] (the gate's input).
    """
    cosine = F.cosine_similarity(semantic_ref, semantic_dist, dim=-1)
    fused = torch.cat(
        [
            structure_ref,
            structure_dist,
            (structure_ref - structure_dist).abs(),
            semantic_ref,
            (semantic_ref - semantic_dist).abs(),
            F.normalize(semantic_ref, dim=-1) * F.normalize(semantic_dist, dim=-1),
            cosine.unsqueeze(-1),
        ],
        dim=-1,
    )
    return fused, cosine
