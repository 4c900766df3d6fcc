"""The semantic gate in every mode, against the reference rules written out here."""

from __future__ import annotations

import pytest
import torch

from semantic_iqa.errors import InvalidOptionError
from semantic_iqa.metrics.dss_sqa.config import GateConfig
from semantic_iqa.metrics.dss_sqa.gate import apply_gate

CONFIG = GateConfig()  # low 0.4, high 0.5, hard logit 12, soft strength 6
COSINES = torch.tensor([0.1, 0.399, 0.4, 0.42, 0.45, 0.499, 0.5, 0.9])


def reference_gate(logits: torch.Tensor, cos: float, mode: str) -> torch.Tensor:
    out = logits.clone()
    if mode == "off":
        return out
    if cos < 0.4:
        out[:] = -12.0
        out[..., 0] = 12.0
        return out
    if mode == "soft" and cos < 0.5:
        delta = 6.0 * min(max((0.5 - cos) / 0.1, 0.0), 1.0)
        out[..., 0] += delta
        out[..., 1:] -= delta
    return out


@pytest.mark.parametrize("mode", ["hard", "soft", "off"])
def test_gate_matches_reference_rules(mode):
    torch.manual_seed(1)
    logits = torch.randn(len(COSINES), 5, 6)
    gated_logits, gated = apply_gate(logits, COSINES, mode, CONFIG)
    for i, cos in enumerate(COSINES.tolist()):
        torch.testing.assert_close(gated_logits[i], reference_gate(logits[i], cos, mode))
    expected_flags = {"hard": COSINES < 0.4, "soft": COSINES < 0.5, "off": torch.zeros(8, dtype=torch.bool)}[mode]
    assert torch.equal(gated, expected_flags)


def test_hard_gate_sends_the_score_to_zero():
    logits, _ = apply_gate(torch.randn(1, 2, 6), torch.tensor([0.0]), "hard", CONFIG)
    score = logits.softmax(-1) @ torch.arange(6.0)
    assert (score < 1e-8).all()


def test_soft_band_grows_linearly_towards_the_low_threshold():
    logits = torch.zeros(3, 1, 6)
    out, _ = apply_gate(logits, torch.tensor([0.49, 0.45, 0.41]), "soft", CONFIG)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.6, 3.0, 5.4]))
    torch.testing.assert_close(out[:, 0, 3], -torch.tensor([0.6, 3.0, 5.4]))


def test_unknown_mode_and_bad_thresholds():
    with pytest.raises(InvalidOptionError, match="unknown gate mode 'medium'"):
        apply_gate(torch.zeros(1, 1, 6), torch.zeros(1), "medium", CONFIG)
    with pytest.raises(InvalidOptionError, match="low < high"):
        GateConfig(low=0.5, high=0.4)


@pytest.mark.parametrize("mode", ["hard", "soft", "off"])
def test_flags_are_booleans_and_the_logits_keep_their_dtype(mode):
    # bfloat16 logits with float32 cosines: the gate's constants must follow the logits' dtype
    # (a float32 veto or soft shift would promote the result), and the flags stay a bool mask.
    logits = torch.randn(3, 2, 6).bfloat16()
    gated_logits, gated = apply_gate(logits, torch.tensor([0.1, 0.45, 0.9]), mode, CONFIG)
    assert gated_logits.dtype == torch.bfloat16
    assert gated.dtype == torch.bool


@pytest.mark.parametrize("mode", ["hard", "soft", "off"])
def test_the_gate_stays_on_the_device_of_its_inputs(mode):
    # The "meta" device stands in for a GPU on a CPU-only machine: a tensor made on the default
    # device (CPU) next to it raises, so this fails if the gate forgets `device=logits.device`.
    logits, cosine = torch.empty(4, 2, 6, device="meta"), torch.empty(4, device="meta")
    gated_logits, gated = apply_gate(logits, cosine, mode, CONFIG)
    assert gated_logits.device.type == gated.device.type == "meta"
    assert gated_logits.shape == (4, 2, 6) and gated.shape == (4,)
