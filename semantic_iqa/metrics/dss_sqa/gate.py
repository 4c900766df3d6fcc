"""The semantic gate: a CLIP-cosine veto on pairs whose content changed."""

from __future__ import annotations

import torch

from .config import GateConfig, check_gate_mode


def apply_gate(
    logits: torch.Tensor, cosine: torch.Tensor, mode: str, config: GateConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the gate to class logits.

    Args:
        logits: [B, F, C] logits of every fold (class 0 = worst).
        cosine: [B] CLIP cosine of each pair.
        mode: "hard", "soft" or "off" (see `GateConfig`).
        config: thresholds and strengths.

    Returns:
        (logits, gated): the gated logits [B, F, C], and a [B] bool tensor telling which pairs
        the gate changed (cos < low for "hard"; cos < high for "soft"; none for "off").
    """
    check_gate_mode(mode)
    if mode == "off":
        return logits, torch.zeros_like(cosine, dtype=torch.bool)
    is_class0 = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    is_class0[0] = True
    vetoed = torch.where(is_class0, config.hard_logit, -config.hard_logit).to(logits.dtype)
    below_low = cosine < config.low
    gated = below_low
    if mode == "soft":
        in_band = (cosine >= config.low) & (cosine < config.high)
        alpha = ((config.high - cosine) / (config.high - config.low)).clamp(0.0, 1.0)
        delta = config.soft_strength * alpha * in_band
        sign = torch.where(is_class0, 1.0, -1.0).to(logits.dtype)
        logits = logits + delta.to(logits.dtype)[:, None, None] * sign
        gated = below_low | in_band
    logits = torch.where(below_low[:, None, None], vetoed, logits)
    return logits, gated
