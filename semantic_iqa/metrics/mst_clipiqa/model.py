"""The MST-CLIPIQA module: two frozen CLIP image towers, gated fusion, and one of two heads.

    f_c = coarse(x), f_f = fine(x)                      projected CLS, [B, D], not normalised
    h = ReLU(W_h [f_c ; f_f]),  g = sigmoid(W_g h)      gate, [B, D]
    z = g * W_c f_c + (1 - g) * W_f f_f                 fused feature, [B, D]

Variant A (no prompt): p = softmax(t * cos(z, text_k)) over the five quality templates
("a photo with bad quality" ... "perfect"), score = sum_k p_k * k in [1, 5], higher is better.
Variant B (prompt-anchored): z' = z + alpha * CrossAttention(z, prompt token states),
score = w_o(GELU(W_1 z') + W_2 z'), unbounded (the training set's MOS scale), higher is better.

The layers carry the reference's names (`W_h`, `cross_attn`, `w_o`, ...), so an authors'
checkpoint maps onto `fusion.*` / `head.*` by its prefix alone (see `convert.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...backbones import CLIPTextEncoder, FrozenEncoder, ProjectedCLIPEncoder
from ...errors import InvalidInputError, InvalidOptionError, WeightsFormatError
from ...inputs import ImageLike, Images, as_float_batch, check_unit_range
from ...metric import Metric, image_columns
from ...preprocess import normalize
from ...registry import MetricInfo, metric_info
from .card import model_card
from .config import MSTCLIPIQAConfig
from .layers import GatedFeatureFusion, build_head
from .output import MSTCLIPIQAOutput  # defined there, importable from here
from .preprocess import (
    load_short_side_center_cropped,
    resize_short_side_center_crop_tensor,
    short_side_resized_size,
)
from .text import tokenize_prompts
from .trained_layers import TrainedLayers


class MSTCLIPIQA(TrainedLayers, Metric):
    """MST-CLIPIQA, no-reference quality of (AI-generated) images; higher is better.

    Variant A scores image quality in [1, 5]; variant B scores an image against the prompt
    that generated it (unbounded, on its training labels' scale). Call it on float tensors to
    keep gradients (`model(images, prompts)`), or use `predict` for any input kind.

    Submodules: `encoders` (`coarse`, `fine`, and `text` for variant B; frozen), `fusion`
    (`GatedFeatureFusion`), `head` (`TemplateQualityHead` or `PromptCrossAttentionHead`).
    The trained layers' tensors (`head_tensors`, `load_head_tensors`, ...): `TrainedLayers`.
    """

    name = "mst_clipiqa"
    config_class = MSTCLIPIQAConfig
    encoder_classes = {"coarse": ProjectedCLIPEncoder, "fine": ProjectedCLIPEncoder, "text": CLIPTextEncoder}

    def __init__(
        self,
        config: MSTCLIPIQAConfig,
        coarse: ProjectedCLIPEncoder,
        fine: ProjectedCLIPEncoder,
        text: CLIPTextEncoder | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        encoders: dict[str, nn.Module] = {"coarse": coarse, "fine": fine}
        if config.variant == "B":
            if text is None or text.with_projection:
                raise WeightsFormatError("variant B needs a CLIPTextEncoder without projection (last_hidden_state)")
            encoders["text"] = text
        for role, encoder in encoders.items():
            if encoder.feature_dim != config.embed_dim:
                raise WeightsFormatError(
                    f"the {role} encoder gives {encoder.feature_dim}-d features, the head expects {config.embed_dim}"
                )
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = GatedFeatureFusion(config.embed_dim, config.hidden_dim)
        self.head = build_head(config)
        # Not in the state dict: they are the config's values. Kept in float64 (cast to the
        # pixels' dtype when used), so a float64 model normalises with the exact constants.
        self.register_buffer(
            "pixel_mean", torch.tensor(config.mean, dtype=torch.float64).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(config.std, dtype=torch.float64).view(1, 3, 1, 1), persistent=False
        )

    @property
    def variant(self) -> str:
        return self.config.variant

    # -- the parts the shared weights I/O and scoring loop ask for --------------------------
    @classmethod
    def load_encoder(cls, role: str, spec, folder) -> FrozenEncoder:
        if role == "text":  # variant B runs the text model without projection (token states)
            return CLIPTextEncoder.from_spec(spec, folder, with_projection=False)
        return super().load_encoder(role, spec, folder)

    @classmethod
    def from_parts(
        cls, config: MSTCLIPIQAConfig, encoders: dict[str, FrozenEncoder], variant: str | None = None
    ) -> MSTCLIPIQA:
        """The model on these encoders with fresh heads; `variant`, if given, must be the config's."""
        if variant is not None and variant != config.variant:
            raise InvalidOptionError(
                f"these weights are MST-CLIPIQA variant {config.variant}, not {variant} "
                "(mst_clipiqa is variant A, mst_clipiqa_prompt variant B)"
            )
        return cls(config, encoders["coarse"], encoders["fine"], encoders.get("text"))

    def frozen_encoders(self) -> dict[str, FrozenEncoder]:
        return dict(self.encoders)

    @property
    def info(self) -> MetricInfo:
        """The registry entry of this variant: `mst_clipiqa` (A) or `mst_clipiqa_prompt` (B)."""
        return metric_info("mst_clipiqa_prompt" if self.variant == "B" else "mst_clipiqa")

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"head": {name: t.contiguous() for name, t in self.head_tensors().items()}}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        if len(parts) != 1:
            raise WeightsFormatError(f"MST-CLIPIQA has one head file, got {len(parts)}")
        self.load_head_tensors(parts[0])

    def model_card(self) -> str:
        return model_card(self.config)

    def image_transform(self) -> Callable[[ImageLike], torch.Tensor]:
        """Decode one image, resize its shorter side and centre-crop it (picklable, for workers)."""
        return functools.partial(load_short_side_center_cropped, size=self.config.image_size)

    def score_batch(
        self, images: dict[str, torch.Tensor], extras: dict[str, list], *, reference_cache: None = None
    ) -> MSTCLIPIQAOutput:
        """Scores of a batch of resized, centre-cropped images (`images["image"]`; variant B: `extras["prompt"]`)."""
        return self.score_pixels(images["image"], extras.get("prompt"))

    def differentiable_score(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list] | None = None,
        *,
        reference_cache: None = None,
        checkpoint_activations: bool = False,
    ) -> torch.Tensor:
        """[B] scores of float images of any size (`images["image"]`), differentiable in them.

        `checkpoint_activations` recomputes both towers' activations in the backward pass.
        """
        prompts = (extras or {}).get("prompt")
        if checkpoint_activations and torch.is_grad_enabled():
            return checkpoint(lambda pixels: self.forward(pixels, prompts).score, images["image"], use_reentrant=False)
        return self.forward(images["image"], prompts).score

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """The shorter side at `image_size` (or the image's own size when not larger)."""
        if min(width, height) <= self.config.image_size:
            return width, height
        return short_side_resized_size(width, height, self.config.image_size)

    # -- scoring -----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> MSTCLIPIQAOutput:
        """Score float images of any size, keeping gradients.

        Args:
            images: [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}; resized (shorter
                side) and centre-cropped here, differentiably.
            prompts: variant B: one generation prompt per image (required); variant A: None.
        """
        images = as_float_batch(images, "images")
        if images.shape[-3] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.score_pixels(resize_short_side_center_crop_tensor(images, self.config.image_size), prompts)

    def predict(
        self,
        images: Images,
        prompts: Sequence[str] | None = None,
        *,
        batch_size: int = 16,
        progress: bool = False,
        workers: int = 0,
    ) -> MSTCLIPIQAOutput:
        """Score images of any accepted kind (paths, PIL, uint8 arrays, float tensors, lists), no gradients."""
        columns = image_columns(("image",), (images,))
        extras = None
        if prompts is not None:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            self._check_prompts(prompts, len(columns["image"]))
            extras = {"prompt": prompts}
        elif self.variant == "B":
            self._check_prompts(None, len(columns["image"]))
        outputs = self.predict_columns(columns, extras, batch_size=batch_size, workers=workers, progress=progress)
        return MSTCLIPIQAOutput.cat(outputs)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> MSTCLIPIQAOutput:
        """Score preprocessed images.

        Args:
            pixels: [B, 3, S, S] float in [0, 1], S = `config.image_size` (224), already
                resized and centre-cropped (`preprocess.resize_short_side_center_crop_*`).
            prompts: variant B: B generation prompts, one per image (required); variant A: None.

        Returns:
            `MSTCLIPIQAOutput` (score [B], higher is better; see there).

        Raises:
            InvalidInputError: wrong pixel shape, dtype or range; prompts missing, of the wrong
                count or type for variant B, or given to variant A.
        """
        self._check_pixels(pixels)
        self._check_prompts(prompts, pixels.shape[0])
        normalised = normalize(pixels, self.pixel_mean.to(pixels.dtype), self.pixel_std.to(pixels.dtype))
        # The frozen towers may run in bf16 (`set_precision`); the trained layers keep their own dtype.
        tower_dtype, layer_dtype = next(self.encoders["coarse"].parameters()).dtype, self.fusion.W_h.weight.dtype
        towers_in = normalised.to(tower_dtype)
        fused, gate = self.fusion(
            self.encoders["coarse"](towers_in).to(layer_dtype), self.encoders["fine"](towers_in).to(layer_dtype)
        )
        if self.variant == "A":
            score, probabilities = self.head(fused)
            return MSTCLIPIQAOutput(score=score, gate_mean=gate.mean(dim=-1), probabilities=probabilities)
        text = self.encoders["text"]
        input_ids, mask = tokenize_prompts(text.tokenizer, list(prompts), self.config.max_prompt_tokens)
        input_ids, mask = input_ids.to(pixels.device), mask.to(pixels.device)
        with torch.no_grad():  # the text tower is frozen: its states need no graph
            states = text(input_ids, mask).to(fused.dtype)
        return MSTCLIPIQAOutput(score=self.head(fused, states, mask), gate_mean=gate.mean(dim=-1))

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        size = self.config.image_size
        if not isinstance(pixels, torch.Tensor) or not pixels.is_floating_point():
            raise InvalidInputError("pixels must be a float tensor [B, 3, S, S] in [0, 1]")
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (3, size, size) or pixels.shape[0] == 0:
            raise InvalidInputError(
                f"pixels must be [B, 3, {size}, {size}] (resized and centre-cropped); got {tuple(pixels.shape)}"
            )
        check_unit_range(pixels, "pixels (normalisation happens inside)")

    def _check_prompts(self, prompts: Any, batch_size: int) -> None:
        if self.variant == "A":
            if prompts is not None:
                raise InvalidInputError("MST-CLIPIQA variant A takes no prompts; variant B is the prompt-anchored one")
            return
        if prompts is None:
            raise InvalidInputError("MST-CLIPIQA variant B needs the generation prompt of every image (prompts=[...])")
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise InvalidInputError(f"prompts must be a list of {batch_size} strings, got {type(prompts).__name__}")
        if len(prompts) != batch_size:
            raise InvalidInputError(f"got {len(prompts)} prompts for {batch_size} images; pass one prompt per image")
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise InvalidInputError(
                    f"prompts[{index}] is {prompt!r} ({type(prompt).__name__}), not a string; "
                    "every image needs the text prompt it was generated from"
                )
