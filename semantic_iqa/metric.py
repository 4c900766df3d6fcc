"""`Metric`: the contract between a metric and the shared layers, and what every metric shares.

A metric is an `nn.Module` subclass of `Metric`. Its registry entry (`MetricInfo`) says what it
is as data (inputs, options, result fields, direction, range); the class provides the hooks
below, which the shared layers call and never look behind (in the manner of huggingface_hub's
`_from_pretrained` / `_save_pretrained`):

- weights I/O: `config_class` (`from_dict` / `to_dict` / `backbone_specs`), `encoder_classes`,
  `from_parts`, `frozen_encoders`, `head_parts`, `load_head_parts`, `model_card`;
- scoring: `image_transform` (decode one image for the batch loop) and `score_batch`
  (a `MetricOutput` for a batch of decoded images, no gradients);
- gradients: `differentiable_score` (explanation maps, adapters) and `training_loss` (losses);
- optional: `make_reference_cache` (reference features kept by content), `working_size`
  (the size the metric resamples an image to, for maps), `embed_batch` (image embeddings, for
  a metric whose entry declares `embeddings`) and `score_and_embed` (both from one pass). A tiny
  random model, if the metric has one, is named by its registry entry (`MetricInfo.tiny`).

Written once here: `from_pretrained` / `save_pretrained` / `push_to_hub` (`WeightsIO`), precision and
compilation of the frozen encoders (`EncoderPrecision`), `predict`, `embed`.
"""

from __future__ import annotations

import itertools
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .backbones import FrozenEncoder
from .config import BackboneSpec
from .errors import InvalidInputError, InvalidOptionError, MetricContractError, UnknownOptionError
from .inputs import ImageLike, Images, image_columns  # image_columns: re-exported (its old home)
from .metric_output import MetricOutput
from .metric_weights import WeightsIO
from .precision import EncoderPrecision
from .registry import MetricInfo, metric_info
from .scoring import Batch, iterate_batches


class Metric(WeightsIO, EncoderPrecision, nn.Module, metaclass=ABCMeta):
    """Base class of the metrics: frozen encoders plus trained heads, one weights folder.

    Shapes: a batch of B images is a float tensor [B, 3, H, W] in [0, 1]; a score is [B].
    Which way is better and the score's range are the registry entry's (`self.info`).
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    encoder_classes: ClassVar[dict[str, type[FrozenEncoder]]]

    config: Any

    # -- weights I/O hooks --------------------------------------------------------------------
    @classmethod
    def load_encoder(cls, role: str, spec: BackboneSpec, folder: Path) -> FrozenEncoder:
        """The frozen encoder of `role`, from `folder / spec.path` or the Hub (override for options)."""
        return cls.encoder_classes[role].from_spec(spec, folder)

    @classmethod
    @abstractmethod
    def from_parts(cls, config: Any, encoders: dict[str, FrozenEncoder], **options: Any) -> Metric:
        """The metric on these frozen `encoders` (by role) with fresh, untrained heads.

        `options` are the fixed options of a registry entry (e.g. a variant); an unknown one
        raises `UnknownOptionError`.
        """

    @abstractmethod
    def frozen_encoders(self) -> dict[str, FrozenEncoder]:
        """The frozen encoders by role (the keys of `encoder_classes`)."""

    @abstractmethod
    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        """The trained tensors as named files: file stem -> {tensor name: tensor} (safetensors)."""

    @abstractmethod
    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        """Load the tensors `head_parts` wrote, in its order; `WeightsFormatError` if they do not fit."""

    @abstractmethod
    def model_card(self) -> str:
        """The README.md of the weights folder (a `huggingface_hub.ModelCard`'s text)."""

    # -- scoring hooks ----------------------------------------------------------------------
    @abstractmethod
    def image_transform(self) -> Callable[[ImageLike], torch.Tensor]:
        """A picklable function decoding one image (path, PIL, array, tensor) into what
        `score_batch` takes: a float tensor [3, S, S] in [0, 1] (run in decoding workers)."""

    @abstractmethod
    def score_batch(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]],
        *,
        reference_cache: Any = None,
        **options: Any,
    ) -> MetricOutput:
        """Scores of one batch of decoded images, no gradients needed.

        Args:
            images: input role ("ref", "dist", "image") -> [B, 3, S, S] from `image_transform`.
            extras: text inputs by role (e.g. "prompt" -> B strings); empty when none.
            reference_cache: from `make_reference_cache` (full reference): reference features
                kept by content; `None` = encode every reference.
            options: the registry entry's `scoring_options` (`None` = not given).

        Returns:
            A `MetricOutput` whose `to_records()` gives `score` and the declared result fields.
        """

    @abstractmethod
    def differentiable_score(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]] | None = None,
        *,
        reference_cache: Any = None,
        checkpoint_activations: bool = False,
        **options: Any,
    ) -> torch.Tensor:
        """[B] scores of float images of any size, differentiable in every non-reference image.

        Args:
            images: input role -> [B, 3, H, W] float in [0, 1] (sizes may differ between roles).
            extras: text inputs by role, as for `score_batch`.
            reference_cache: as for `score_batch`; references never need gradients.
            checkpoint_activations: recompute the encoders' activations in the backward pass
                instead of storing them (less memory, one more forward pass of time).
            options: scoring options, as for `score_batch`.
        """

    # -- optional hooks ---------------------------------------------------------------------
    def training_loss(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]] | None = None,
        *,
        reference_cache: Any = None,
        checkpoint_activations: bool = False,
        **loss_options: Any,
    ) -> torch.Tensor:
        """[B] losses, lower is better, for training a model against this metric.

        The default reads the score's direction and range from the registry entry: a bounded
        higher-is-better score gives `high - score` (>= 0, 0 at the best score), an unbounded
        one `-score`; a lower-is-better score `score - low`, or `score` when unbounded. A
        metric overrides this to add terms of its own (`loss_options`).
        """
        if loss_options:
            raise UnknownOptionError(f"{self.name}'s loss takes no options; got {', '.join(loss_options)}")
        score = self.differentiable_score(
            images, extras, reference_cache=reference_cache, checkpoint_activations=checkpoint_activations
        )
        low, high = self.info.score_range
        if self.info.higher_is_better:
            return high - score if high is not None else -score
        return score - low if low is not None else score

    def make_reference_cache(self, max_items: int = 4096) -> Any:
        """An object keeping reference features by content, for `score_batch` / `differentiable_score`.

        `None` (the default) when the metric has no reference or nothing worth keeping.
        """
        return None

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the metric resamples a `width` x `height` image to before encoding;
        explanation maps are computed at that size. Default: the image's own size."""
        return width, height

    def embed_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, D] float embeddings of images [B, 3, S, S] from `image_transform` (entries declaring `embeddings`)."""
        self.info.require_embeddings(f"{type(self).__name__}.embed_batch")
        raise MetricContractError(f"{self.name} declares embeddings but {type(self).__name__} has no embed_batch")

    def score_and_embed(
        self, images: dict[str, torch.Tensor], extras: dict[str, list[Any]], **options: Any
    ) -> tuple[MetricOutput, dict[str, torch.Tensor]]:
        """`score_batch`'s output, and `embed_batch` of each image role; override to encode each image once."""
        output = self.score_batch(images, extras, **options)
        return output, {role: self.embed_batch(pixels) for role, pixels in images.items()}

    # -- shared ---------------------------------------------------------------------------
    @property
    def info(self) -> MetricInfo:
        """The registry entry: FR or NR, which way is better, the score range."""
        return metric_info(self.name)

    @property
    def device(self) -> torch.device:
        """Where the metric's tensors are (the CPU for a metric that has none)."""
        tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def predict(
        self,
        *images: Images,
        prompts: str | Sequence[str] | None = None,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = False,
        **options: Any,
    ) -> MetricOutput:
        """Score items of any accepted input kind (paths, PIL, uint8 arrays, float tensors, lists).

        Args:
            images: one argument per image input of the registry entry, in its order
                (`predict(ref, dist)`, `predict(images)`), each one image or a batch/list.
            prompts: the text of each item, for metrics whose inputs include "prompt".
            options: the entry's `scoring_options`.

        Returns:
            The concatenated `MetricOutput` of every batch; no gradients.
        """
        info = self.info
        options = info.check_options(options)
        roles = [role for role in info.inputs if role != "prompt"]
        if len(images) != len(roles):
            raise InvalidInputError(
                f"{info.name} takes {len(roles)} image input(s) ({', '.join(roles)}), got {len(images)}"
            )
        columns = image_columns(roles, images)
        extras = None
        if "prompt" in info.inputs:
            count = len(next(iter(columns.values())))
            texts = [prompts] if isinstance(prompts, str) else list(prompts or [])
            if len(texts) != count or not all(isinstance(text, str) for text in texts):
                raise InvalidInputError(f"{info.name} needs one prompt (a string) per image: {count}, got {prompts!r}")
            extras = {"prompt": texts}
        elif prompts is not None:
            raise InvalidInputError(f"{info.name} takes no prompts")
        outputs = self.predict_columns(
            columns, extras, batch_size=batch_size, workers=workers, progress=progress, **options
        )
        return type(outputs[0]).cat(outputs)

    @torch.inference_mode()
    def predict_columns(
        self,
        images: dict[str, Sequence[ImageLike]],
        extras: dict[str, Sequence[Any]] | None = None,
        *,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = False,
        **options: Any,
    ) -> list[Any]:
        """Score items given as columns (validated already); returns one output per batch.

        A decoding error is raised, naming the image (use the scoring loop directly to
        collect errors instead, as `semantic-iqa score-dir` does).
        """
        batches = self._batches(images, extras, batch_size, workers, progress)
        return [self.score_batch(batch.images, batch.extras, **options) for batch in batches]

    @torch.inference_mode()
    def embed(self, images: Images, *, batch_size: int = 16, workers: int = 0, progress: bool = False) -> torch.Tensor:
        """Embeddings [N, D] (float32, CPU) of images of any accepted kind; what a row is: the entry's `embeddings`.

        `InvalidOptionError` for a metric that declares none, before any image is read."""
        self.info.require_embeddings(f"{self.name}.embed")
        batches = self._batches(image_columns(("image",), (images,)), None, batch_size, workers, progress)
        return torch.cat([self.embed_batch(batch.images["image"]) for batch in batches]).float().cpu()

    def _batches(
        self, images: dict[str, Sequence[Any]], extras: Any, batch_size: int, workers: int, progress: bool
    ) -> Iterator[Batch]:
        """Decoded batches of the columns through the one batch loop; a decoding error is raised, naming the image."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
        columns, unit = {**images, **(extras or {})}, "pair" if len(images) == 2 else "image"
        settings = {"batch_size": batch_size, "workers": workers, "device": self.device, "progress": progress}
        for batch in iterate_batches(columns, list(images), self.image_transform(), unit=unit, **settings):
            if batch.failures:
                raise batch.failures[0][1]
            yield batch
