"""What the DreamSim converter tests share: the clip_vitb32 release, edited copies of it, the authors' model.

The release is written once per session (`dreamsim_release.shared_release`); each test edits a
copy whose backbone files are links (`variant`), so a refusal case costs a few files, not GBs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from dreamsim.config import dreamsim_args
from dreamsim.model import PerceptualModel
from dreamsim_release import dino_hub, shared_release
from safetensors.torch import load_file, save_file

CLIP_LORA = "clip_vitb32_single_lora"
ADAPTER = f"{CLIP_LORA}/adapter_model.safetensors"


@pytest.fixture
def free_disk(tmp_path):
    """Each test's converted folders and zips are hundreds of MB: removed after it."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def clip_release(request) -> Path:
    return shared_release(request, "clip_vitb32")


def variant(release: Path, folder: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A copy of `release` to edit: backbone files linked, `*_lora` folders copied."""
    for file in sorted(release.rglob("*")):
        name = file.relative_to(release).as_posix()
        if not file.is_file() or name in drop:
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if "_lora/" in name:
            shutil.copy(file, target)
        else:
            os.symlink(file, target)
    return folder


def edit_config(folder: Path, lora: str = CLIP_LORA, **changes: object) -> None:
    path = folder / lora / "adapter_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def edit_tensors(folder: Path, edit) -> None:
    tensors = load_file(folder / ADAPTER)
    edit(tensors)
    save_file(tensors, folder / ADAPTER, metadata={"format": "pt"})


def authors_perceptual_model(folder: Path, model_type: str = "clip_vitb32") -> PerceptualModel:
    with dino_hub(folder):
        return PerceptualModel(**dreamsim_args["model_config"][model_type], device="cpu", load_dir=str(folder))
