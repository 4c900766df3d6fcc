"""Reading the DreamSim authors' release: the zip as downloaded, or the folder it was unpacked into.

The authors' `dreamsim()` downloads one zip per model (`dreamsim_<type>_checkpoint.zip`,
`dreamsim.config.dreamsim_weights`) and unpacks it into its `cache_dir`. What a model needs
(their `download_weights`):

    ensemble           dino_vitb16_pretrain.pth, clip_vitb16_pretrain.pth.tar,
                       open_clip_vitb16_pretrain.pth.tar, ensemble_lora/
    dino_vitb16        dino_vitb16_pretrain.pth, dino_vitb16_single_lora/
    clip_vitb32        clip_vitb32_pretrain.pth.tar, clip_vitb32_single_lora/
    open_clip_vitb32   open_clip_vitb32_pretrain.pth.tar, open_clip_vitb32_single_lora/

The `*_lora/` folder is a peft adapter (`adapter_config.json`, `adapter_model.safetensors` or
`.bin`); which one is there says the model type. Their code takes the DINO backbone from
`torch.hub.load("facebookresearch/dino:main", "dino_vitb16")`, which downloads
`dino_vitbase16_pretrain.pth` into `<cache_dir>/checkpoints/`: a folder that the authors'
code has run on holds it there. Members may sit below a top folder (a zip repacked so).

Every file is read with `torch.load(weights_only=True)`, which loads tensors and plain data
and runs no code.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ...checkpoints import _unpickling_reason
from ...errors import ConversionError
from .branches import MODEL_TYPES, Branch

DINO_HUB_FILE = "dino_vitbase16_pretrain.pth"  # torch.hub's download of DINO's ViT-B/16 backbone
_ADAPTER = re.compile(r"^(?P<prefix>(?:[^/]+/)*?)(?P<folder>[^/]+_lora)/adapter_config\.json$")
_MAX_DEPTH = 4  # folder levels searched below an unpacked folder (cache_dir/top/ensemble_lora/file)


def backbone_file(item: Branch) -> str:
    """The authors' file name of a branch's backbone (`clip_vitb32_pretrain.pth.tar`, ...)."""
    return f"{item.name}_pretrain.pth" if item.role == "dino" else f"{item.name}_pretrain.pth.tar"


class Release:
    """The files of an authors' release, by their path inside it (zip member or relative path).

    `open_release(path)` gives one; use it as a context manager (a zip stays open inside).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.members = _folder_files(path)
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
                self.members = [info.filename for info in self._zip.infolist() if not info.is_dir()]
            except (zipfile.BadZipFile, OSError) as exc:
                raise ConversionError(f"{path} is neither a folder nor a readable zip: {exc}") from None
        else:
            raise ConversionError(f"{path} not found: give the authors' release zip or the folder it was unpacked into")
        self.prefix = ""
        self._names = set(self.members)

    def __enter__(self) -> Release:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def label(self, name: str) -> str:
        """How errors and provenance name a member: `release.zip:member` or the file's path."""
        member = self.prefix + name
        return f"{self.path}:{member}" if self.is_zip else str(self.path / member)

    def has(self, name: str) -> bool:
        return self.prefix + name in self._names

    def require(self, name: str, what: str) -> None:
        if not self.has(name):
            where = f"the zip {self.path}" if self.is_zip else f"the folder {self.path}"
            raise ConversionError(f"{where} has no {self.prefix + name} ({what}): an incomplete or other release")

    def read(self, name: str) -> bytes:
        """The bytes of a member (`require` it first)."""
        try:
            if self._zip is not None:
                return self._zip.read(self.prefix + name)
            return (self.path / (self.prefix + name)).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:  # damaged, or a compression
            raise ConversionError(f"cannot read {self.label(name)}: {exc}") from None  # zipfile cannot decode

    def choose_model(self, model_type: str | None) -> str:
        """The model type of the release (its `*_lora/` folder), or check the one given; sets `prefix`."""
        found = {}
        for member in self.members:
            match = _ADAPTER.match(member)
            if match and match["prefix"].count("/") < _MAX_DEPTH:
                found.setdefault(match["folder"], set()).add(match["prefix"])
        known = {folder: name for name, (_, folder) in MODEL_TYPES.items()}
        present = sorted(known[folder] for folder in found if folder in known)
        if model_type is None:
            if not present:
                other = f" (it has {', '.join(sorted(found))}: models this converter does not know)" if found else ""
                raise ConversionError(
                    f"{self.path} holds no DreamSim LoRA adapter folder of a known model "
                    f"({', '.join(sorted(known))}){other}: is it the authors' release?"
                )
            if len(present) > 1:
                raise ConversionError(
                    f"{self.path} holds several DreamSim models ({', '.join(present)}): choose one with --model-type"
                )
            model_type = present[0]
        elif model_type not in MODEL_TYPES:
            raise ConversionError(f"unknown DreamSim model type {model_type!r}; known: {', '.join(MODEL_TYPES)}")
        folder = MODEL_TYPES[model_type][1]
        if folder not in found:
            others = f"; it has {', '.join(present)}" if present else ""
            raise ConversionError(f"{self.path} has no {folder}/adapter_config.json (the {model_type} model){others}")
        if len(found[folder]) > 1:
            raise ConversionError(f"{self.path} holds {folder}/ in several places: {', '.join(sorted(found[folder]))}")
        self.prefix = next(iter(found[folder]))
        return model_type


def open_release(path: str | os.PathLike) -> Release:
    """The release at `path` (a zip or a folder); `ConversionError` if it is neither."""
    return Release(Path(path))


def _folder_files(root: Path) -> list[str]:
    files = []
    for folder, subfolders, names in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if depth >= _MAX_DEPTH:
            subfolders.clear()
        files += [Path(folder, name).relative_to(root).as_posix() for name in names]
    return sorted(files)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_tensors(data: bytes, label: str, *, dino_args: bool = False) -> Any:
    """`torch.load(weights_only=True)` of a file's bytes on the CPU; `ConversionError` naming `label`.

    dino_args: also allow `argparse.Namespace`. DINO's training checkpoints store the run's
        command-line arguments as one (`args`); a Namespace holds only plain values and its
        unpickling runs no code, so the safe loader may build it. Nothing else is allowed.
    """
    allowed = [argparse.Namespace] if dino_args else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConversionError(
            f"{label} holds objects other than tensors, which the safe loader (torch.load weights_only=True) "
            f"refuses: {_unpickling_reason(exc)}. Only the full unpickler, which can run code stored in the file, "
            "would read it: use the authors' original file"
        ) from None
    except Exception as exc:  # zip or storage errors of a damaged file
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ConversionError(f"cannot read {label} as a torch checkpoint: {reason}") from None
