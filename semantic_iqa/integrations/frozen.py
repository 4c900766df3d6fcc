"""One way for every adapter to use a metric inside a user's model without the user's model changing it.

A restoration model typically holds its metric as a submodule (`self.iqa = ...`), hands
`self.parameters()` to its optimizer, calls `self.train()` every epoch and saves
`self.state_dict()`. A metric registered as an ordinary submodule would be trained by that
optimizer, have its BatchNorm heads put in training mode (scores that depend on the batch,
running statistics overwritten) and add its frozen backbones (often gigabytes) to every
checkpoint. So each adapter holds its metric OUTSIDE the module tree: `parameters()`,
`state_dict()`, `train()` and `zero_grad()` of an enclosing module never reach it, while
`.to()`, `.cuda()`, `.half()` (everything that goes through `_apply`) still move it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..contract import check_options
from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo, create_metric, list_metrics, metric_info

if TYPE_CHECKING:
    from ..metric import Metric


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


KIND_WORDS = {"FR": "full-reference", "NR": "no-reference"}


def default_metric_of_kind(kind: str) -> str:
    """The first registered metric of `kind` ("FR" or "NR"): built-ins first, in setup.cfg's order."""
    for info in list_metrics():
        if info.kind == kind:
            return info.name
    raise InvalidOptionError(f"no {KIND_WORDS.get(kind, kind)} metric is registered; name one with metric=")


def load_frozen_metric(
    metric: str,
    weights: str | os.PathLike | None = None,
    model: nn.Module | None = None,
    *,
    kind: str | None = None,
    adapter: str = "this adapter",
) -> tuple[MetricInfo, Metric]:
    """The registry entry `metric` and its model, frozen (`requires_grad` off) and in eval mode.

    Args:
        metric: registry name of any registered metric (built-in or plug-in).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (its class and fixed options must be the
            entry's); loaded on the CPU from `weights` otherwise.
        kind: "FR" or "NR" when the adapter takes only one kind; `None` for either.
        adapter: the adapter's name, for messages.

    Raises:
        InvalidOptionError: unknown `metric` or one of the other kind; both `weights` and
            `model`; a `model` that is not what the entry describes.
    """
    info = metric_info(metric)
    if kind is not None and info.kind != kind:
        raise InvalidOptionError(
            f"{metric!r} ({info.title}) is a {KIND_WORDS[info.kind]} metric; {adapter} is for "
            f"{KIND_WORDS[kind]} ones (QualityLoss and FullReferenceQualityMetric take either kind)"
        )
    if model is None:
        model = create_metric(metric, weights, device="cpu")
    elif weights is not None:
        raise InvalidOptionError("pass weights= or model=, not both")
    else:
        info.check_model(model)
    return info, model.eval().requires_grad_(False)


def scoring_options(info: MetricInfo, given: dict[str, Any]) -> dict[str, Any]:
    """`given` checked as `info`'s scoring options, those left unset (`None`) dropped.

    Why check here and not at the first call: a typo or a wrong value fails where the adapter
    is built, before any weights are read, with the metric's own options named.
    """
    return {name: value for name, value in info.check_options(given).items() if value is not None}


def loss_options(info: MetricInfo, given: dict[str, Any]) -> dict[str, Any]:
    """`given` checked as `info`'s loss options (`MetricInfo.loss_options`), unset ones dropped."""
    others = {option.name: other.name for other in list_metrics() for option in other.loss_options}
    checked = check_options(f"{info.name}'s loss", info.loss_options, given, others)
    return {name: value for name, value in checked.items() if value is not None}


def metric_inputs(
    info: MetricInfo,
    images: torch.Tensor,
    ref: torch.Tensor | None = None,
    prompts: Sequence[str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, list[Any]]]:
    """(images by input role, extras) for the hooks of `info`'s metric, from an adapter's call.

    The roles are the contract's: "ref" and "dist" for a full-reference entry, "image" for a
    no-reference one, "prompt" as the one text input.

    `images` are the scored images ("dist" of a full-reference entry, "image" of a
    no-reference one); `ref` the references (full reference only), detached: no gradient reaches
    them, whichever metric scores them. Prompts go to entries whose inputs include "prompt" (the
    model checks them); any other entry refuses them by name rather than drop or misread them.
    """
    if info.kind == "FR":
        if ref is None:
            raise InvalidInputError(f"{info.name!r} is a full-reference metric: pass the references too")
        constant = ref.detach() if isinstance(ref, torch.Tensor) else ref  # anything else: the metric's typed error
        roles = {"ref": constant, "dist": images}
    elif ref is not None:
        raise InvalidInputError(f"{info.name!r} is a no-reference metric: pass the images alone (no reference)")
    else:
        roles = {"image": images}
    if "prompt" not in info.inputs:
        if prompts is not None:
            raise InvalidInputError(f"{info.name!r} takes no prompts (only {', '.join(info.inputs)})")
        return roles, {}
    return roles, ({} if prompts is None else {"prompt": prompts})  # as given: the metric checks them
