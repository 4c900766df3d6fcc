"""What an MST-CLIPIQA model gives back: `MSTCLIPIQAOutput`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...metric_output import MetricOutput


@dataclass
class MSTCLIPIQAOutput(MetricOutput):
    """What one forward pass gives, per image.

    score: [B]; variant A: expected quality level in [1, 5]; variant B: unbounded regression
        output on the training labels' scale. Higher is better for both.
    gate_mean: [B], mean of the fusion gate g over channels in [0, 1] (1 = coarse stream only).
    probabilities: [B, 5] for variant A (levels bad .. perfect), None for B.
    """

    score: torch.Tensor
    gate_mean: torch.Tensor
    probabilities: torch.Tensor | None = None
