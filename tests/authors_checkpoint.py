"""The DSS-SQA authors' fold checkpoints, written the way their train script writes them.

Only the checkpoint format is specified by the reference (docs: "The authors' checkpoint
format"): a `torch.save` of a plain dict with `epoch`, `model` (the whole state_dict),
`optimizer` and `scheduler` (real state dicts), `metrics` (Python floats) and `config` (the
YAML training config as parsed). Everything here is built that way, for real: the YAML is
text parsed with `yaml.safe_load` (so the value types are YAML's), the heads are trained with
a real AdamW and a per-epoch CosineAnnealingLR, `best.pth` is saved when the held-out Final
improves and `last.pth` after the last epoch.

The `model:` section holds every key of the reference table with its reference value, typed
independently of the converter's table. The other sections' keys are illustrative: the
converter must not care about them (`train` uses lr 1e-2, not the reference 2e-4, and 5
epochs, so that the tiny heads move enough for their scores to spread). The backbones are
tiny random ones (shared and frozen, as in the authors' run), so a fold trains in a second.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from scipy import stats
from torch import nn

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)

# The reference run's `model:` section as YAML text, from the reference's table.
REFERENCE_MODEL_YAML: dict[str, str] = {
    "structure_backbone": "vit_base_patch16_dinov3",
    "ablation_mode": "full",
    "clip_name": "clip_vit_l14_336",
    "num_classes": "6",
    "clip_mult_enabled": "true",
    "clip_mult_replace_raw": "true",
    "clip_mult_l2_norm": "true",
    "bottleneck_dim": "256",
    "semantic_gate_enabled": "true",
    "semantic_gate_mode": "hard",
    "semantic_gate_threshold": "0.4",
    "semantic_gate_high_threshold": "0.5",
    "gate_logit_strength": "12.0",
    "soft_gate_logit_strength": "6.0",
    "freeze_backbones": "true",
    "bottleneck_dropout": "0.5",
    "clip_interpolate_pos_encoding": "true",
    "swin_name": "swin_base_patch4_window7_224",
    "swin_local_path": "pretrained/swin_base_patch4_window7_224.pth",
    "clip_local_dir": "pretrained/clip-vit-large-patch14-336",
    "clip_local_files_only": "false",
}

_CONFIG_YAML = """\
seed: 3407
data:
  root: data/LoViF_SeIQA/Train
  score_file: train_scores.xlsx
  image_size: 224
  num_folds: 5
  fold_seed: 3407
  hflip_p: 0.5
  num_workers: 4
model:
{model}
train:
  epochs: 5
  batch_size: 8
  lr: 1e-2            # YAML 1.1 (PyYAML) reads this as a string (no dot): the script calls float()
  weight_decay: 0.01
  grad_clip: 1.0
  ce_weight: 1.0
  mse_weight: 1.0
  label_smoothing: 0.0
debug:
  enabled: false
  max_samples: null
output:
  dir: outputs/dss_sqa
  save_last: true
"""


def authors_config(**model_changes: str | None) -> dict[str, Any]:
    """The full training config as their script has it: YAML text through `yaml.safe_load`.

    `model_changes` edits the `model:` section, as YAML text (`"false"`, `"6.0"`, `"soft"`);
    None removes a key, and a key not in the reference table is added.
    """
    model = dict(REFERENCE_MODEL_YAML)
    for key, text in model_changes.items():
        if text is None:
            model.pop(key, None)
        else:
            model[key] = text
    section = "\n".join(f"  {key}: {text}" for key, text in model.items())
    return yaml.safe_load(_CONFIG_YAML.format(model=section))


class AuthorsModel(nn.Module):
    """The authors' module layout as the reference describes it: its state_dict IS their format."""

    def __init__(self, structure: nn.Module, clip: nn.Module, fusion_dim: int) -> None:
        super().__init__()
        self.structure_backbone = structure
        self.clip_backbone = clip
        self.bottleneck = nn.Sequential(nn.Linear(fusion_dim, 256), nn.BatchNorm1d(256), nn.SiLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.Linear(256, 128), nn.SiLU(), nn.Dropout(0.2), nn.Linear(128, 6))
        self.register_buffer("score_weights", torch.arange(6.0))

    def fuse(self, ref: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised 224 px pixels -> (5377-style fused features, CLIP cosine), written out independently."""
        s_r = self.structure_backbone.forward_features(ref)[:, 0]
        s_d = self.structure_backbone.forward_features(dist)[:, 0]
        up = lambda x: F.interpolate(x, size=(336, 336), mode="bilinear", align_corners=False)  # noqa: E731
        c_r = self.clip_backbone(pixel_values=up(ref)).pooler_output
        c_d = self.clip_backbone(pixel_values=up(dist)).pooler_output
        cos = F.cosine_similarity(c_r, c_d, dim=1)
        product = F.normalize(c_r, dim=1) * F.normalize(c_d, dim=1)
        fused = torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), product, cos[:, None]], dim=1)
        return fused, cos

    def forward(self, ref: torch.Tensor, dist: torch.Tensor, gate: str = "hard") -> torch.Tensor:
        """Score (expected class) with the reference gate (`hard`, `soft` or `off`), eval mode."""
        fused, cos = self.fuse(ref, dist)
        logits = self.head(self.bottleneck(fused))
        if gate == "soft":
            alpha = ((0.5 - cos) / (0.5 - 0.4)).clamp(0, 1)
            shift = (-6.0 * alpha)[:, None].repeat(1, 6)
            shift[:, 0] = 6.0 * alpha
            logits = torch.where(((cos >= 0.4) & (cos < 0.5))[:, None], logits + shift, logits)
        if gate in ("hard", "soft"):
            vetoed = torch.full_like(logits, -12.0)
            vetoed[:, 0] = 12.0
            logits = torch.where((cos < 0.4)[:, None], vetoed, logits)
        return logits.softmax(dim=1) @ self.score_weights


def authors_state_dict(model: AuthorsModel) -> dict[str, torch.Tensor]:
    """`model.state_dict()` as the authors' transformers 4 wrote it: `clip_backbone.vision_model.*`.

    The reference lists the CLIP keys as `clip_backbone.vision_model....`, and transformers 4
    also saved the `embeddings.position_ids` buffer. transformers 5's `CLIPVisionModel` has no
    `vision_model.` level, so the installed library's own names would not be the real format.
    """
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("clip_backbone.") and not key.startswith("clip_backbone.vision_model."):
            key = "clip_backbone.vision_model." + key[len("clip_backbone.") :]
        state[key] = value
    positions = state["clip_backbone.vision_model.embeddings.position_embedding.weight"].shape[0]
    state["clip_backbone.vision_model.embeddings.position_ids"] = torch.arange(positions)[None]
    return state


@dataclass
class SavedFold:
    """One fold's two files and the in-memory models they were saved from."""

    best_path: Path
    last_path: Path
    best_model: AuthorsModel
    last_model: AuthorsModel
    best_epoch: int
    best_metrics: dict[str, float]


class AuthorsRun:
    """A miniature of the authors' 5-fold run on shared frozen backbones (random pixels, random labels)."""

    def __init__(self, structure: nn.Module, clip: nn.Module, pairs: int = 25, seed: int = 3407) -> None:
        self.structure, self.clip = structure, clip
        self.fusion_dim = 3 * structure.num_features + 3 * clip.config.hidden_size + 1
        generator = torch.Generator().manual_seed(seed)
        pixels = lambda: (torch.rand(pairs, 3, 224, 224, generator=generator) - CLIP_MEAN) / CLIP_STD  # noqa: E731
        with torch.no_grad():  # frozen backbones: their features are fixed, so compute them once
            self.features, _ = AuthorsModel(structure, clip, self.fusion_dim).eval().fuse(pixels(), pixels())
        self.labels = torch.randint(0, 6, (pairs,), generator=generator)

    def train_and_save(self, folder: Path, config: dict[str, Any], folds: Iterable[int] = range(5)) -> list[SavedFold]:
        """Train the given folds (deterministically) and save `fold_<k>/checkpoints/{best,last}.pth`."""
        return [self._train_fold(folder / f"fold_{fold}" / "checkpoints", config, fold) for fold in folds]

    def _train_fold(self, checkpoints: Path, config: dict[str, Any], fold: int) -> SavedFold:
        checkpoints.mkdir(parents=True, exist_ok=True)
        train = config["train"]
        torch.manual_seed(100 + fold)
        model = AuthorsModel(self.structure, self.clip, self.fusion_dim)
        for backbone in (model.structure_backbone, model.clip_backbone):
            backbone.requires_grad_(not config["model"]["freeze_backbones"])
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=float(train["lr"]), weight_decay=train["weight_decay"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"])
        held_out = torch.arange(fold, len(self.labels), 5)
        train_idx = torch.tensor([i for i in range(len(self.labels)) if i % 5 != fold])
        best_final, best = -float("inf"), None
        for epoch in range(train["epochs"]):
            model.bottleneck.train()
            model.head.train()
            order = train_idx[torch.randperm(len(train_idx))]
            for batch in order.split(train["batch_size"]):
                logits = model.head(model.bottleneck(self.features[batch]))
                target = self.labels[batch]
                expected = logits.softmax(dim=1) @ model.score_weights
                loss = train["ce_weight"] * F.cross_entropy(logits, target) + train["mse_weight"] * F.mse_loss(
                    expected, target.float()
                )
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, train["grad_clip"])
                optimizer.step()
            scheduler.step()
            metrics = self._evaluate(model, held_out, loss.item())
            checkpoint = {
                "epoch": epoch,
                "model": authors_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "metrics": metrics,
                "config": config,
            }
            if metrics["final"] > best_final:
                best_final = metrics["final"]
                torch.save(checkpoint, checkpoints / "best.pth")
                best = (copy.deepcopy(model).eval(), epoch, metrics)
        torch.save(checkpoint, checkpoints / "last.pth")
        assert best is not None
        return SavedFold(checkpoints / "best.pth", checkpoints / "last.pth", best[0], model.eval(), best[1], best[2])

    def _evaluate(self, model: AuthorsModel, held_out: torch.Tensor, train_loss: float) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            logits = model.head(model.bottleneck(self.features[held_out]))
            predicted = (logits.softmax(dim=1) @ model.score_weights).numpy()
        truth = self.labels[held_out].float().numpy()
        srocc = float(stats.spearmanr(predicted, truth).statistic)
        plcc = float(stats.pearsonr(predicted, truth).statistic)
        return {"train_loss": train_loss, "srocc": srocc, "plcc": plcc, "final": 0.6 * srocc + 0.4 * plcc}
