"""The DSS-SQA and MST-CLIPIQA authors' INFERENCE, rebuilt for a speed comparison with ours.

No code of either authors' repository is copied (DSS-SQA's has no licence): this is the
behaviour /work/shared/reference/dss-sqa.md and mst-clipiqa.md describe, written the
straightforward way their code runs it, with the libraries they use (timm, transformers,
torchvision, PIL), in fp32, eval mode, under `torch.no_grad`.

- DSS-SQA: one complete model object per fold (structure backbone, CLIP backbone,
  bottleneck, head, `score_weights`), each loaded from its own checkpoint state_dict and
  each run on the pair, so a pair costs FIVE passes of both backbones over both images.
  The five fold objects hold the same two backbone module objects (one copy in memory,
  ~1.6 GB in fp32 instead of ~8 GB), but every fold still runs them itself: the FLOPs of
  five copies. Each image: PIL longer side to 224 (bicubic), black pad to 224x224,
  ToTensor, CLIP Normalize; the CLIP branch resizes that tensor bilinearly to 336. The hard
  gate (cos < 0.4: logits -12, class 0 +12); the score is the mean of the folds' expected
  scores (of scores, not of logits).
- MST-CLIPIQA, variant A: their model class (`mstfe` with two
  `CLIPVisionModelWithProjection`, `gff`, `head` with the template text features as a stored
  buffer; the head also holds its text tower, which inference never runs: the templates were
  encoded once), torchvision Resize(224, BICUBIC) + CenterCrop(224) + ToTensor + Normalize on
  each PIL image, stacked into batches.

`authors_dss_from(ours)` and `authors_mst_from(ours)` build these modules and load a
`semantic_iqa` model's tensors into them, under the authors' checkpoint key names, so that
both pipelines can be checked to give the same scores on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch import nn
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
)

from semantic_iqa.metrics.dss_sqa.model import DSSSQA
from semantic_iqa.metrics.dss_sqa.tiny import ARCHITECTURES as DSS_SIZES
from semantic_iqa.metrics.mst_clipiqa.model import MSTCLIPIQA
from semantic_iqa.metrics.mst_clipiqa.tiny import RANDOM_PRESETS as MST_SIZES

# The reference notes' constants, written out here (not read from semantic_iqa's config).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DSS_IMAGE_SIZE = 224
DSS_STRUCTURE = "vit_base_patch16_dinov3"
GATE_LOW, GATE_LOGIT = 0.4, 12.0  # the hard gate of the reference run's config
MST_IMAGE_SIZE = 224


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in tensors.items()}


# -- DSS-SQA -----------------------------------------------------------------------------------
def resize_pad_square(image: Image.Image, size: int = DSS_IMAGE_SIZE) -> Image.Image:
    """Longer side to `size` (PIL bicubic), black padding to `size x size`, floor(pad / 2) left/top."""
    image = image.convert("RGB")
    width, height = image.size
    longest = max(width, height)
    new_w, new_h = max(1, round(width * size / longest)), max(1, round(height * size / longest))
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(image.resize((new_w, new_h), Image.BICUBIC), ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


DSS_TRANSFORM = T.Compose([resize_pad_square, T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])


class DSSFoldModel(nn.Module):
    """One fold's whole model, as the authors' checkpoint holds it (its state_dict IS their `model` layout)."""

    def __init__(self, structure_backbone: nn.Module, clip_backbone: CLIPVisionModel, bottleneck_dim: int = 256):
        super().__init__()
        self.structure_backbone = structure_backbone
        self.clip_backbone = clip_backbone
        fusion_dim = 3 * structure_backbone.num_features + 3 * clip_backbone.config.hidden_size + 1
        self.bottleneck = nn.Sequential(
            nn.Linear(fusion_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.SiLU(), nn.Dropout(0.5)
        )
        self.head = nn.Sequential(nn.Linear(bottleneck_dim, 128), nn.SiLU(), nn.Dropout(0.2), nn.Linear(128, 6))
        self.register_buffer("score_weights", torch.arange(6.0))

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised [B, 3, 224, 224] -> (DINOv3 CLS [B, 768], CLIP pooler_output [B, 1024])."""
        structure = self.structure_backbone.forward_features(pixels)[:, 0]
        side = self.clip_backbone.config.image_size
        clip_pixels = F.interpolate(pixels, size=(side, side), mode="bilinear", align_corners=False)
        return structure, self.clip_backbone(pixel_values=clip_pixels).pooler_output

    def forward(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """Expected class in [0, 5] of each pair; the hard gate in eval mode."""
        s_r, c_r = self.image_features(ref)
        s_d, c_d = self.image_features(dist)
        cos = F.cosine_similarity(c_r, c_d, dim=1)
        product = F.normalize(c_r, dim=1) * F.normalize(c_d, dim=1)
        fused = torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), product, cos[:, None]], dim=1)
        logits = self.head(self.bottleneck(fused))
        if not self.training:
            vetoed = torch.full_like(logits, -GATE_LOGIT)
            vetoed[:, 0] = GATE_LOGIT
            logits = torch.where((cos < GATE_LOW)[:, None], vetoed, logits)
        return (logits.softmax(dim=1) * self.score_weights).sum(dim=1)


class AuthorsDSSSQA:
    """The authors' 5-fold inference: every fold model scores every pair; the mean of their scores."""

    def __init__(self, folds: Sequence[DSSFoldModel]) -> None:
        self.folds = [fold.eval() for fold in folds]

    @classmethod
    def build(cls, preset: str = "full", num_folds: int = 5) -> AuthorsDSSSQA:
        """Random models at the preset's sizes ("full": DINOv3 ViT-B/16 + CLIP ViT-L/14-336)."""
        sizes = DSS_SIZES[preset]
        # Shared by the fold objects to keep one copy in memory; each fold still runs them (see the module doc).
        structure = timm.create_model(DSS_STRUCTURE, pretrained=False, **sizes["structure"])
        clip = CLIPVisionModel(CLIPVisionConfig(**sizes["semantic"]))
        return cls([DSSFoldModel(structure, clip) for _ in range(num_folds)])

    def load_checkpoints(self, states: Sequence[dict[str, torch.Tensor]]) -> AuthorsDSSSQA:
        """Each fold loads its own checkpoint's `model` state_dict (strictly)."""
        if len(states) != len(self.folds):
            raise ValueError(f"{len(states)} checkpoints for {len(self.folds)} folds")
        for fold, state in zip(self.folds, states, strict=True):
            fold.load_state_dict(state, strict=True)
        return self

    @torch.no_grad()
    def __call__(self, refs: Sequence[Image.Image], dists: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        """Scores [N] of N PIL pairs, in batches of `batch_size` pairs."""
        scores = []
        for start in range(0, len(refs), batch_size):
            ref = torch.stack([DSS_TRANSFORM(image) for image in refs[start : start + batch_size]])
            dist = torch.stack([DSS_TRANSFORM(image) for image in dists[start : start + batch_size]])
            scores.append(torch.stack([fold(ref, dist) for fold in self.folds]).mean(dim=0))
        return torch.cat(scores)


# Our fold heads' layer names -> the authors' module names (their checkpoint's `model` keys).
DSS_HEAD_LAYERS = {"linear1": "bottleneck.0", "norm": "bottleneck.1", "linear2": "head.0", "linear3": "head.3"}


def dss_checkpoint_states(model: DSSSQA) -> list[dict[str, torch.Tensor]]:
    """Our model's tensors as the authors' per-fold `model` state_dicts (backbones repeated in each)."""
    backbones = {
        **_prefixed("structure_backbone.", model.structure.model.state_dict()),
        **_prefixed("clip_backbone.", model.semantic.model.state_dict()),
    }
    states = []
    for fold in range(model.config.num_folds):
        head = {}
        for name, tensor in model.heads.fold_state_dict(fold).items():
            layer, rest = name.split(".", 1)
            head[f"{DSS_HEAD_LAYERS[layer]}.{rest}"] = tensor
        states.append({**backbones, **head, "score_weights": torch.arange(6.0)})
    return states


def authors_dss_from(model: DSSSQA, preset: str) -> AuthorsDSSSQA:
    """The authors' pipeline at `preset`'s sizes, each fold loaded with our model's tensors."""
    return AuthorsDSSSQA.build(preset, model.config.num_folds).load_checkpoints(dss_checkpoint_states(model))


# -- MST-CLIPIQA, variant A ------------------------------------------------------------------------
MST_TRANSFORM = T.Compose(
    [
        T.Resize(MST_IMAGE_SIZE, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(MST_IMAGE_SIZE),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ]
)


class MultiScaleEncoder(nn.Module):
    """`mstfe`: the coarse (patch 32) and fine (patch 16) CLIP image towers with projection."""

    def __init__(self, coarse: dict, fine: dict) -> None:
        super().__init__()
        self.encoder_coarse = CLIPVisionModelWithProjection(CLIPVisionConfig(**coarse))
        self.encoder_fine = CLIPVisionModelWithProjection(CLIPVisionConfig(**fine))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder_coarse(pixel_values=pixels).image_embeds, self.encoder_fine(
            pixel_values=pixels
        ).image_embeds


class GatedFusion(nn.Module):
    """`gff`: z = g * W_c f_c + (1 - g) * W_f f_f with g = sigmoid(W_g ReLU(W_h [f_c; f_f]))."""

    def __init__(self, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.W_h = nn.Linear(2 * embed_dim, hidden_dim)
        self.W_g = nn.Linear(hidden_dim, embed_dim)
        self.W_c = nn.Linear(embed_dim, embed_dim)
        self.W_f = nn.Linear(embed_dim, embed_dim)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.W_g(F.relu(self.W_h(torch.cat([coarse, fine], dim=1)))))
        return gate * self.W_c(coarse) + (1 - gate) * self.W_f(fine)


class TemplateHead(nn.Module):
    """`head`: softmax(t * cos(z, template_k)) . [1..5]; the templates' features are a stored buffer."""

    def __init__(self, text: dict, embed_dim: int, levels: int = 5) -> None:
        super().__init__()
        self.text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**text))  # encoded the templates once
        self.temperature = nn.Parameter(torch.tensor(100.0))
        self.register_buffer("quality_scores", torch.arange(1.0, levels + 1.0))
        self.register_buffer("text_features", torch.zeros(levels, embed_dim))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        similarity = F.normalize(fused, dim=-1) @ self.text_features.t()
        return (self.temperature * similarity).softmax(dim=-1) @ self.quality_scores


class MSTVariantAModel(nn.Module):
    """The authors' variant-A model class; its state_dict is their checkpoint's layout."""

    def __init__(self, preset: str = "full") -> None:
        super().__init__()
        sizes = MST_SIZES[preset]
        self.mstfe = MultiScaleEncoder(sizes["coarse"], sizes["fine"])
        self.gff = GatedFusion(sizes["embed_dim"], sizes["hidden_dim"])
        self.head = TemplateHead(sizes["text"], sizes["embed_dim"])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.gff(*self.mstfe(pixels)))


class AuthorsMSTCLIPIQA:
    """The authors' evaluation: eval transform per PIL image, stacked batches, the model in eval mode."""

    def __init__(self, model: MSTVariantAModel) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        """Scores [N] in [1, 5] of N PIL images."""
        scores = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([MST_TRANSFORM(image.convert("RGB")) for image in images[start : start + batch_size]])
            scores.append(self.model(batch))
        return torch.cat(scores)


def mst_checkpoint_state(model: MSTCLIPIQA, text_encoder: nn.Module) -> dict[str, torch.Tensor]:
    """Our variant-A model's tensors under the authors' keys; `text_encoder`'s (ours keeps no text tower) added."""
    return {
        **_prefixed("mstfe.encoder_coarse.", model.encoders["coarse"].model.state_dict()),
        **_prefixed("mstfe.encoder_fine.", model.encoders["fine"].model.state_dict()),
        **_prefixed("gff.", model.fusion.state_dict()),
        **_prefixed("head.", model.head.state_dict()),
        **_prefixed("head.text_encoder.", text_encoder.state_dict()),
    }


def authors_mst_from(model: MSTCLIPIQA, preset: str) -> AuthorsMSTCLIPIQA:
    """The authors' variant-A pipeline at `preset`'s sizes, loaded (strictly) with our model's tensors."""
    if model.variant != "A":
        raise ValueError("the authors' template pipeline is variant A")
    authors = MSTVariantAModel(preset)
    authors.load_state_dict(mst_checkpoint_state(model, authors.head.text_encoder), strict=True)
    return AuthorsMSTCLIPIQA(authors)
