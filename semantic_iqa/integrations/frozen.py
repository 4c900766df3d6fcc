"""One way for every adapter to use a metric inside a user's model without the user's model changing it.

A restoration model typically holds its metric as a submodule (`self.iqa = ...`), hands
`self.parameters()` to its optimizer, calls `self.train()` every epoch and saves
`self.state_dict()`. A metric registered as an ordinary submodule would be trained by that
optimizer, have its BatchNorm heads put in training mode (scores that depend on the batch,
running statistics overwritten) and add its frozen backbones (1.5 GB for DSS-SQA) to every
checkpoint. So each adapter holds its metric OUTSIDE the module tree: `parameters()`,
`state_dict()`, `train()` and `zero_grad()` of an enclosing module never reach it, while
`.to()`, `.cuda()`, `.half()` (everything that goes through `_apply`) still move it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class HoldsFrozenMetric:
    """Mixin for an `nn.Module` adapter that scores with a metric it never trains.

    Call `self._hold_metric(model)` in `__init__` (after `nn.Module.__init__`). The metric is
    put in eval mode with `requires_grad` off on every parameter, in place, and is reachable
    as `self.model`; gradients still flow through it into the images.
    """

    _model: nn.Module
    # Whether dtype casts of the adapter (`.double()`, Lightning's "64-true") reach the metric
    # too. Losses follow them (a float64 loss is a float64 metric: gradcheck needs it);
    # torchmetrics metrics do not: torchmetrics casts only their states (`set_dtype`), and
    # the metric keeps the precision it was loaded in.
    _metric_follows_dtype: bool = True

    def _hold_metric(self, model: nn.Module) -> None:
        # object.__setattr__ bypasses nn.Module's registration of submodules.
        object.__setattr__(self, "_model", model.eval().requires_grad_(False))

    @property
    def model(self) -> Any:
        """The held metric (frozen, eval mode)."""
        return self._model

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._metric_follows_dtype:
            self._model._apply(fn)  # device and dtype moves reach the held metric too
        else:  # only where `fn` sends a tensor: a device move
            self._model.to(fn(torch.zeros((), device=self._model.device)).device)
        self._after_move()
        return super()._apply(fn, *args, **kwargs)  # type: ignore[misc]

    def _after_move(self) -> None:
        """Hook run after the held metric moved (e.g. drop features cached on the old device)."""
