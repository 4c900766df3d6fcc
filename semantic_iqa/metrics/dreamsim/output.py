"""What a DreamSim model gives back: `DreamSimOutput`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...metric_output import MetricOutput


@dataclass
class DreamSimOutput(MetricOutput):
    """Distances of B pairs.

    score: [B] DreamSim distance, 1 - cosine of the two embeddings, in [0, 2]; LOWER means
        more similar (0 = the same embedding).
    """

    score: torch.Tensor
