"""MST-CLIPIQA: the authors' checkpoint converter, and the CLIP towers' folder loading."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
import torch
from mst_reference import TINY, authors_checkpoint, reference_scores
from pickle_payload import CreatesAFile
from PIL import Image
from reference_repos import write_clip_repo
from transformers import CLIPConfig, CLIPModel

from semantic_iqa.backbones import CLIPTextEncoder, ProjectedCLIPEncoder
from semantic_iqa.config import BackboneSpec
from semantic_iqa.errors import ConversionError, WeightsFormatError
from semantic_iqa.metrics.mst_clipiqa.convert import convert_mst_checkpoint, convert_mst_state_dict, load_mst_checkpoint
from semantic_iqa.metrics.mst_clipiqa.preprocess import load_short_side_center_cropped
from semantic_iqa.metrics.mst_clipiqa.text import build_clip_tokenizer, write_clip_tokenizer_files

PROMPTS = ["a cat", "a photo of a dog on a beach at sunset, highly detailed", "abstract art"]
TINY_SIZES = {"coarse_config": TINY["coarse"], "fine_config": TINY["fine"], "text_config": TINY["text"]}


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def pixels(photo):
    rng = np.random.default_rng(2)
    images = [photo.crop((0, 0, 250, 230)), Image.fromarray(rng.integers(0, 256, (230, 260, 3), dtype=np.uint8))]
    images.append(photo.rotate(45).resize((300, 240)))
    return torch.stack([load_short_side_center_cropped(image) for image in images])


def _expected(state, towers, pixels, variant):
    # The reference in float64, towers included, on the authors' own tensors and modules.
    towers64 = {role: copy.deepcopy(module).double() for role, module in towers.items()}
    return reference_scores(state, towers64, pixels, PROMPTS if variant == "B" else None)


@pytest.mark.parametrize("variant", ["A", "B"])
@pytest.mark.parametrize("layout", ["bare", "model_state_dict"])
def test_authors_checkpoint_reproduces_the_independent_forward(tmp_path, pixels, tokenizer, variant, layout):
    state, towers = authors_checkpoint(variant, seed=3)
    assert any(k.startswith("mstfe.encoder_coarse.vision_model.") for k in state)
    assert any(k.startswith("head.text_encoder.text_model.") for k in state)  # transformers-4 names
    path = tmp_path / f"best_model_variant_{variant}.pth"
    torch.save(state if layout == "bare" else {"model_state_dict": state, "epoch": 7}, path)

    model = convert_mst_checkpoint(path, variant, tokenizer=tokenizer, **TINY_SIZES)
    expected = _expected(state, towers, pixels, variant)
    prompts = PROMPTS if variant == "B" else None
    with torch.no_grad():
        score32 = model(pixels, prompts).score
        score64 = copy.deepcopy(model).double()(pixels.double(), prompts).score
    # Run in float64, the converted model IS the reference (1e-9); in float32 it differs by
    # float32 round-off only, which the tiny towers' large activations (10x init) amplify to
    # about 2e-5 of the score.
    torch.testing.assert_close(score64, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(score32.double(), expected, rtol=1e-4, atol=1e-5)
    assert set(model.encoders) == ({"coarse", "fine"} if variant == "A" else {"coarse", "fine", "text"})
    assert model.config.provenance["converted_from"] == str(path)
    if variant == "A":  # the stored template features are the checkpoint's text tower's
        assert model.config.provenance["text_features_max_deviation"] < 1e-5


def test_load_refuses_a_pickle_that_needs_full_unpickling(tmp_path):
    state, _ = authors_checkpoint("A", seed=0)
    marker = tmp_path / "code-ran"
    torch.save({"model_state_dict": state, "extra": CreatesAFile(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ConversionError, match="full unpickler"):
        load_mst_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists(), "the pickle's code ran"


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        load_mst_checkpoint(tmp_path / "absent.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ConversionError, match="cannot read .* as a torch checkpoint"):
        load_mst_checkpoint(tmp_path / "text.pth")
    torch.save({"epoch": 3}, tmp_path / "no-state.pth")
    with pytest.raises(ConversionError, match="not an MST-CLIPIQA state_dict"):
        load_mst_checkpoint(tmp_path / "no-state.pth")


@pytest.mark.parametrize(
    "variant,change,match",
    [
        ("A", lambda s: s.pop("gff.W_g.bias"), r"missing gff.W_g.bias"),
        (
            "A",
            lambda s: s.pop("mstfe.encoder_fine.visual_projection.weight"),
            r"missing mstfe.encoder_fine.visual_proj",
        ),
        ("B", lambda s: s.pop("head.text_encoder.text_model.final_layer_norm.weight"), r"missing head.text_encoder\."),
        ("B", lambda s: s.pop("head.alpha"), r"missing head.alpha"),
        ("A", lambda s: s.update({"head.bonus": torch.zeros(1)}), r"unexpected head.bonus"),
        ("A", lambda s: s.update({"mstfe.encoder_coarse.extra": torch.zeros(1)}), r"unexpected mstfe.encoder_coarse"),
        ("B", lambda s: s.update({"head.temperature": torch.tensor(1.0)}), r"unexpected head.temperature"),
        ("A", lambda s: s.update({"gff.W_c.weight": torch.zeros(64, 32)}), r"gff.W_c.weight has shape \(64, 32\)"),
        (
            "A",
            lambda s: s.update({"head.quality_scores": torch.arange(5.0)}),
            r"quality_scores must be \[1, 2, 3, 4, 5\]",
        ),
    ],
)
def test_converter_refuses_checkpoints_that_do_not_fit(tokenizer, variant, change, match):
    state, _ = authors_checkpoint(variant, seed=1)
    change(state)
    with pytest.raises(ConversionError, match=match):
        convert_mst_state_dict(state, variant, tokenizer=tokenizer, **TINY_SIZES)


def test_converter_lists_every_problem_at_once(tokenizer):
    state, _ = authors_checkpoint("A", seed=1)
    del state["gff.W_h.bias"], state["head.temperature"]
    state["head.alpha"] = torch.tensor(0.0)
    with pytest.raises(ConversionError, match="3 problem") as raised:
        convert_mst_state_dict(state, "A", tokenizer=tokenizer, **TINY_SIZES)
    assert "gff.W_h.bias" in str(raised.value) and "head.alpha" in str(raised.value)


def test_scalars_saved_as_one_element_vectors_are_accepted(tokenizer, pixels):
    state, _ = authors_checkpoint("A", seed=2)
    model = convert_mst_state_dict(state, "A", tokenizer=tokenizer, **TINY_SIZES)
    state["head.temperature"] = state["head.temperature"].reshape(1)
    other = convert_mst_state_dict(state, "A", tokenizer=tokenizer, **TINY_SIZES)
    with torch.no_grad():
        torch.testing.assert_close(other(pixels).score, model(pixels).score, rtol=0, atol=0)


# --- The towers' folders ---------------------------------------------------------------


def _whole_clip_repo(folder, seed=0):
    vision = {k: v for k, v in TINY["coarse"].items() if k != "projection_dim"}
    text = {k: v for k, v in TINY["text"].items() if k not in ("projection_dim", "vocab_size")}
    write_clip_repo(folder, vision=vision, text=text, projection_dim=64, seed=seed)
    for placeholder in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / placeholder).unlink()
    write_clip_tokenizer_files(folder)  # the real repo's tokenizer files (the stand-in's are placeholders)
    return folder


def test_projected_encoder_loads_a_whole_clip_repo_and_its_own_folder(tmp_path, pixels):
    folder = _whole_clip_repo(tmp_path / "clip")
    encoder = ProjectedCLIPEncoder.from_folder(folder)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    config = CLIPConfig.from_dict(json.loads((folder / "config.json").read_text()))
    clip = CLIPModel(config).eval()
    clip.load_state_dict({k: v for k, v in state.items() if not k.endswith("position_ids")}, strict=False)
    with torch.no_grad():
        features = encoder(pixels)
        expected = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
    assert features.shape == (3, 64) and encoder.feature_dim == 64
    torch.testing.assert_close(features, expected)
    assert not torch.allclose(features.norm(dim=-1), torch.ones(3))  # not L2-normalised

    encoder.save(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(ProjectedCLIPEncoder.from_folder(tmp_path / "saved")(pixels), features)


def test_a_missing_projection_is_an_error_not_a_random_layer(tmp_path):
    folder = _whole_clip_repo(tmp_path / "clip")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["visual_projection.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(WeightsFormatError, match="visual_projection.weight"):
        ProjectedCLIPEncoder.from_folder(folder)


@pytest.mark.parametrize("with_projection", [True, False])
def test_text_encoder_loads_a_whole_clip_repo_and_round_trips_with_its_tokenizer(tmp_path, with_projection):
    folder = _whole_clip_repo(tmp_path / "clip")
    with pytest.raises(WeightsFormatError, match="with_projection"):
        CLIPTextEncoder.from_folder(folder)  # a whole CLIP holds both: the caller must say which
    encoder = CLIPTextEncoder.from_spec(
        BackboneSpec("transformers", "clip", path="clip"), tmp_path, with_projection=with_projection
    )
    assert encoder.with_projection is with_projection
    ids = torch.tensor([encoder.tokenizer("a photo with good quality")["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        features = encoder(ids, mask)
    assert features.shape == ((1, 64) if with_projection else (1, ids.shape[1], 64))

    encoder.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.json").is_file()
    loaded = CLIPTextEncoder.from_folder(tmp_path / "saved")  # its config.json names the class
    assert loaded.with_projection is with_projection
    assert loaded.tokenizer("a photo with good quality")["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask), features)


def test_text_encoder_from_the_hub_fetches_the_tokenizer_files_of_the_same_revision(tmp_path):
    """Through the real huggingface_hub client and the local Hub stand-in, in a fresh process."""
    from conftest import run_python
    from fake_hub import FakeHub

    folder = _whole_clip_repo(tmp_path / "snapshot")
    commit = "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"
    code = (
        "from semantic_iqa.backbones import CLIPTextEncoder; from semantic_iqa.config import BackboneSpec; "
        "spec = BackboneSpec('transformers', 'clip', repo_id='openai/clip-vit-base-patch32', "
        f"revision='{commit}'); "
        "encoder = CLIPTextEncoder.from_spec(spec, with_projection=False); "
        "print('IDS', encoder.tokenizer('a cat')['input_ids'], encoder.with_projection)"
    )
    with FakeHub() as hub:
        hub.add_folder("openai/clip-vit-base-patch32", folder, commit=commit)
        env = {
            **os.environ,
            "HF_HOME": str(tmp_path / "home"),
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_DISABLE_XET": "1",
        }
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_HUB_CACHE", None)
        result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert "IDS [49406, 320, 2368, 49407] False" in result.stdout
    fetched = " ".join(hub.requests)
    assert "/vocab.json" in fetched and "/merges.txt" in fetched and f"/resolve/{commit}/" in fetched
    assert "tf_model.h5" not in fetched  # only what the text model and its tokenizer need
