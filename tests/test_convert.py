"""convert-siqav3: authors'-format checkpoints (built here from the reference layout) round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import ImageFilter
from test_model import hand_pixels
from torch import nn

from semantic_iqa import DSSSQA
from semantic_iqa.backbones import SemanticEncoder, StructureEncoder
from semantic_iqa.cli import main
from semantic_iqa.convert import convert_siqav3
from semantic_iqa.errors import ConversionError

SWITCHES = {
    "clip_name": "clip_vit_l14_336",
    "structure_backbone": "vit_base_patch16_dinov3",
    "num_classes": 6,
    "clip_mult_enabled": True,
    "clip_mult_replace_raw": True,
    "clip_mult_l2_norm": True,
    "bottleneck_dim": 256,
    "semantic_gate_mode": "hard",
    "semantic_gate_low": 0.4,
    "semantic_gate_high": 0.5,
    "dropout": 0.5,  # a training switch the converter does not need to know
}


class AuthorsModel(nn.Module):
    """The authors' module layout as the reference describes it: its state_dict IS their format."""

    def __init__(self, structure: nn.Module, clip: nn.Module, fusion_dim: int) -> None:
        super().__init__()
        self.structure_backbone = structure
        self.clip_backbone = clip
        self.bottleneck = nn.Sequential(nn.Linear(fusion_dim, 256), nn.BatchNorm1d(256), nn.SiLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.Linear(256, 128), nn.SiLU(), nn.Dropout(0.2), nn.Linear(128, 6))
        self.register_buffer("score_weights", torch.arange(6.0))

    def forward(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """Normalised 224 px pixels -> score with the hard gate, written out independently."""
        s_r = self.structure_backbone.forward_features(ref)[:, 0]
        s_d = self.structure_backbone.forward_features(dist)[:, 0]
        up = lambda x: F.interpolate(x, size=(336, 336), mode="bilinear", align_corners=False)  # noqa: E731
        c_r = self.clip_backbone(pixel_values=up(ref)).pooler_output
        c_d = self.clip_backbone(pixel_values=up(dist)).pooler_output
        cos = F.cosine_similarity(c_r, c_d, dim=1)
        product = F.normalize(c_r, dim=1) * F.normalize(c_d, dim=1)
        fused = torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), product, cos[:, None]], dim=1)
        logits = self.head(self.bottleneck(fused))
        vetoed = torch.full_like(logits, -12.0)
        vetoed[:, 0] = 12.0
        logits = torch.where((cos < 0.4)[:, None], vetoed, logits)
        return logits.softmax(dim=1) @ self.score_weights


@pytest.fixture(scope="module")
def authors_folds(tiny_dir: Path, tmp_path_factory) -> tuple[list[Path], list[AuthorsModel]]:
    """Five fold checkpoints sharing tiny backbones, each with its own random head and BN statistics."""
    folder = tmp_path_factory.mktemp("authors")
    structure = StructureEncoder.from_folder(tiny_dir / "structure").model
    clip = SemanticEncoder.from_folder(tiny_dir / "semantic").model
    fusion_dim = 3 * structure.num_features + 3 * clip.config.hidden_size + 1
    paths, models = [], []
    for fold in range(5):
        torch.manual_seed(100 + fold)
        model = AuthorsModel(structure, clip, fusion_dim).eval()
        with torch.no_grad():
            model.bottleneck[1].running_mean.normal_(0, 0.3)
            model.bottleneck[1].running_var.uniform_(0.5, 2.0)
            model.bottleneck[1].num_batches_tracked.fill_(160)
        path = folder / f"fold_{fold}" / "checkpoints" / "best.pth"
        path.parent.mkdir(parents=True)
        torch.save(
            {
                "epoch": 7,
                "model": model.state_dict(),
                "optimizer": {},
                "scheduler": {},
                "metrics": {"final": torch.tensor(0.86)},
                "config": {"model": dict(SWITCHES)},
            },
            path,
        )
        paths.append(path)
        models.append(model)
    return paths, models


def authors_score(models: list[AuthorsModel], refs, dists) -> torch.Tensor:
    with torch.no_grad():
        ref, dist = hand_pixels(refs), hand_pixels(dists)
        return torch.stack([model(ref, dist) for model in models]).mean(dim=0)


def test_converted_model_gives_the_authors_scores(authors_folds, tiny_dir, tmp_path, photo):
    paths, models = authors_folds
    out = convert_siqav3(paths, tmp_path / "converted", architecture_from=tiny_dir)
    refs = [photo, photo, photo.resize((90, 200)), photo]
    dists = [photo.filter(ImageFilter.GaussianBlur(3)), photo.rotate(180), photo.resize((50, 40)), photo]
    for i, (ref, dist) in enumerate(zip(refs, dists, strict=True)):  # image files, as users score them
        ref.save(tmp_path / f"ref{i}.png")
        dist.save(tmp_path / f"dist{i}.png")
    model = DSSSQA.from_pretrained(out, device="cpu")
    ours = model.predict([tmp_path / f"ref{i}.png" for i in range(4)], [tmp_path / f"dist{i}.png" for i in range(4)])
    torch.testing.assert_close(ours.score, authors_score(models, refs, dists), rtol=1e-5, atol=1e-5)

    config = json.loads((out / "config.json").read_text())
    assert config["structure"]["path"] == "structure" and config["semantic"]["path"] == "semantic"
    sources = config["provenance"]["source_checkpoints"]
    assert [s["file"] for s in sources] == ["best.pth"] * 5 and all(len(s["sha256"]) == 64 for s in sources)
    assert sources[0]["metrics"] == {"final": pytest.approx(0.86)}
    assert (out / "README.md").read_text().count("LoViF 2026 SeIQA train split") == 1


def test_hub_backbones_keeps_only_the_heads(authors_folds, tiny_dir, tmp_path):
    out = convert_siqav3(authors_folds[0], tmp_path / "heads-only", hub_backbones=True, architecture_from=tiny_dir)
    config = json.loads((out / "config.json").read_text())
    assert config["structure"]["repo_id"] == "timm/vit_base_patch16_dinov3.lvd1689m"
    assert config["semantic"]["repo_id"] == "openai/clip-vit-large-patch14-336"
    assert not (out / "structure").exists() and not (out / "semantic").exists()
    assert config["backbone_files"] == []


def rewrite(path: Path, tmp_path: Path, edit) -> Path:
    checkpoint = torch.load(path, weights_only=False)
    edit(checkpoint)
    target = tmp_path / f"edited_{path.parent.parent.name}.pth"
    torch.save(checkpoint, target)
    return target


@pytest.mark.parametrize(
    "switch,value,message",
    [
        ("clip_name", "clip_vit_b16", "'clip_name'] is 'clip_vit_b16'"),
        ("clip_mult_replace_raw", False, "reference value True"),
        ("semantic_gate_low", 0.3, "reference value 0.4"),
        ("semantic_gate_mode", "medium", "is not one of"),
        ("semantic_gate_temperature", 2.0, "unrecognised gate switch"),
    ],
)
def test_non_reference_switches_are_refused(authors_folds, tiny_dir, tmp_path, switch, value, message):
    paths, _ = authors_folds
    edited = rewrite(paths[2], tmp_path, lambda c: c["config"]["model"].__setitem__(switch, value))
    with pytest.raises(ConversionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        convert_siqav3([paths[0], paths[1], edited], tmp_path / "out", architecture_from=tiny_dir)


def test_folds_with_different_backbones_are_refused(authors_folds, tiny_dir, tmp_path):
    paths, _ = authors_folds
    key = "clip_backbone.post_layernorm.bias"
    edited = rewrite(paths[1], tmp_path, lambda c: c["model"][key].add_(0.01))
    with pytest.raises(ConversionError, match="semantic backbones of .* differ"):
        convert_siqav3([paths[0], edited], tmp_path / "out", architecture_from=tiny_dir)


def test_unreadable_and_foreign_files_are_refused(authors_folds, tiny_dir, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    for path, message in ((junk, "cannot read"), (foreign, "no 'model' state_dict"), (tmp_path / "x.pth", "not found")):
        with pytest.raises(ConversionError, match=message):
            convert_siqav3([path], tmp_path / "out", architecture_from=tiny_dir)
    missing_head = rewrite(authors_folds[0][0], tmp_path, lambda c: c["model"].pop("head.3.bias"))
    with pytest.raises(ConversionError, match="missing .*head.3.bias"):
        convert_siqav3([missing_head], tmp_path / "out", architecture_from=tiny_dir)


def test_reference_architecture_refuses_tiny_backbones_clearly(authors_folds, tmp_path):
    with pytest.raises(ConversionError, match="does not fit the expected architecture"):
        convert_siqav3(authors_folds[0][:1], tmp_path / "out")


def test_cli(authors_folds, tiny_dir, tmp_path, capsys):
    paths, _ = authors_folds
    argv = ["convert-siqav3", *map(str, paths), "--out", str(tmp_path / "cli"), "--architecture-from", str(tiny_dir)]
    assert main(argv) == 0
    assert "converted 5 fold(s)" in capsys.readouterr().out
    assert main(["convert-siqav3", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["convert-siqav3", "--help"])
    assert "weights_only=False" in capsys.readouterr().out
