"""The frozen-encoder base class and what the encoder classes share: file checks, CLIP key names."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from transformers.utils import logging as transformers_logging

from ..config import BACKBONE_CONFIG_FILE, BACKBONE_WEIGHT_FILES, BackboneSpec
from ..errors import SemanticIQAError, WeightsFormatError, WeightsNotFoundError


class FrozenEncoder(nn.Module):
    """An encoder whose parameters never train and which stays in eval mode."""

    library: str  # the library whose folder format and classes the encoder uses
    feature_dim: int
    hub_files: tuple[str, ...] = ()  # files a Hub snapshot needs beyond config and weights

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        # Frozen: dropout/norm layers of the backbone never switch to training behaviour.
        return super().train(False)

    @classmethod
    def from_folder(cls, folder: Path) -> FrozenEncoder:
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: BackboneSpec, weights_root: Path | None = None, **folder_options: Any) -> FrozenEncoder:
        """Load the encoder `spec` names, from `weights_root / spec.path` or from the Hub.

        `folder_options` go to `from_folder` (e.g. `with_projection` of `CLIPTextEncoder`).
        """
        if spec.library != cls.library:
            raise WeightsFormatError(
                f"backbone {spec.name!r}: {cls.__name__} loads {cls.library} models, not {spec.library!r}"
            )
        if spec.path is not None:
            if weights_root is None:
                raise WeightsFormatError(f"backbone {spec.name!r} is stored in {spec.path!r} but no folder was given")
            folder = weights_root / spec.path
        else:
            from ..hub import snapshot_backbone  # only Hub-referenced backbones need it

            folder = snapshot_backbone(spec, extra_files=cls.hub_files)
        try:
            return cls.from_folder(folder, **folder_options)
        except SemanticIQAError:
            raise
        except pickle.UnpicklingError:  # torch.load(weights_only=True) met something other than tensors
            raise WeightsFormatError(
                f"backbone {spec.name}: refused to load {folder}: its pytorch_model.bin holds objects other than "
                "tensors (possibly code), which the safe loader does not run; use a safetensors copy"
            ) from None
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # damaged or foreign files
            hint = "download it again with --force" if spec.repo_id else "export the weights folder again"
            raise WeightsFormatError(
                f"backbone {spec.name}: cannot load {folder}: {str(exc).splitlines()[0]}; {hint}"
            ) from None


class ImageEncoder(FrozenEncoder):
    """A frozen image encoder: normalised pixels [B, 3, H, W] -> features [B, D] (`encode`).

    On a CPU it encodes at most `cpu_tokens_per_call` tokens per call, splitting a larger
    batch into consecutive chunks (the same rows come back, in order). Why: between its matrix
    products a ViT keeps activations of tokens x 4 x width floats (the MLP's hidden state);
    when one call holds many images these outgrow the CPU's caches and the elementwise work
    (activation, residuals, copies) turns memory-bound. Measured for CLIP ViT-L/14 at 336 px
    (577 tokens per image) on a 2-core AVX2 CPU: at 16 images per call that work took 13 % of
    the time against 3 % at one image, and the tower ran ~20 % slower per image
    (benchmarks/CPU_NOTES.md). GPUs are not split: a larger batch is what they want.
    """

    cpu_tokens_per_call = 2048  # CLIP ViT-L/14 at 336 px: 3 images per call; ViT-B/16 at 224: 10

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Features [B, D] of one call of the backbone (no splitting)."""
        raise NotImplementedError

    def tokens_per_image(self, pixels: torch.Tensor) -> int:
        """How many tokens the backbone makes of one image of `pixels` (patches + prefix tokens); 0 for
        a model that has no tokens (a CNN), which is never split."""
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens_per_image(pixels) if pixels.device.type == "cpu" else 0
        if tokens <= 0:  # a GPU, or a model without tokens: one call
            return self.encode(pixels)
        per_call = max(1, self.cpu_tokens_per_call // tokens)
        if len(pixels) <= per_call:
            return self.encode(pixels)
        return torch.cat([self.encode(chunk) for chunk in pixels.split(per_call)])


_QUIET_LOCK = threading.Lock()
_quiet_blocks = 0  # `quiet_transformers_bars` blocks open now, in any thread
_hook_before: Any = None  # transformers' tqdm hook when the first of them opened


@contextmanager
def quiet_transformers_bars() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards") inside the block.

    A library prints nothing on its own; the command line decides what to show. Nothing global
    changes for good: transformers' tqdm hook (`set_tqdm_hook`, transformers 5) is swapped for
    one that makes silent bars and put back when the last open block (of any thread) closes.
    `transformers.utils.logging.disable_progress_bar` is not used: it also switches off
    huggingface_hub's download bars for the whole process (and warns where
    HF_HUB_DISABLE_PROGRESS_BARS=0). transformers 4 has no hook, and no bars for one-file loads.
    """
    global _quiet_blocks, _hook_before
    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return
    with _QUIET_LOCK:
        if _quiet_blocks == 0:
            _hook_before = set_hook(lambda factory, args, kwargs: transformers_logging.EmptyTqdm(*args, **kwargs))
        _quiet_blocks += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_blocks -= 1
            if _quiet_blocks == 0:
                set_hook(_hook_before)


def weights_file(folder: Path, library: str) -> Path:
    """The folder's weights file (the first of the library's accepted names that exists)."""
    names = BACKBONE_WEIGHT_FILES[library]
    found = [folder / name for name in names if (folder / name).is_file()]
    if not (folder / BACKBONE_CONFIG_FILE).is_file() or not found:
        raise WeightsNotFoundError(
            f"backbone folder {folder} needs {BACKBONE_CONFIG_FILE} and one of {', '.join(names)} ({library} format)"
        )
    return found[0]


# --- CLIP towers of MST-CLIPIQA: projected image embeddings, and the text tower with its tokenizer.

# A CLIP tokenizer's files (a Hub CLIP repo's, or those `save_pretrained` writes); a folder
# needs `tokenizer.json`, or `vocab.json` + `merges.txt`, to load.
CLIP_TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
CLIP_CONTEXT_LENGTH = 77  # positions of CLIP's text model, start and end tokens included
# Module levels that transformers 4 had in every CLIP tower and that transformers 5 dropped
# from `CLIPVisionModel` / `CLIPTextModel` (the *WithProjection classes keep theirs).
CLIP_TOWER_LEVELS = ("vision_model.", "text_model.")


def clip_keys_for_installed(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP tower's tensors renamed to the key names `model` has under the installed transformers.

    Checkpoints written by transformers 4 name every tower's tensors under `vision_model.` /
    `text_model.`; transformers 5 dropped that level from `CLIPVisionModel` and
    `CLIPTextModel` (its own loader renames on load, `load_state_dict` does not). Keys are
    moved into or out of that level where that is what `model` expects, so checkpoints of
    either era load into either. The `embeddings.position_ids` buffer that older versions
    saved is dropped where the model no longer has it (it is recomputed, not learnt).
    Unknown keys are kept, so a strict `load_state_dict` still reports them.
    """
    wanted = set(model.state_dict())
    renamed = {}
    for key, value in tensors.items():
        if key not in wanted:
            for level in CLIP_TOWER_LEVELS:
                if key.startswith(level) and key[len(level) :] in wanted:
                    key = key[len(level) :]
                    break
                if level + key in wanted:
                    key = level + key
                    break
            else:
                if key.endswith("embeddings.position_ids"):
                    continue  # a buffer recomputed by the model, not a weight
        renamed[key] = value
    return renamed


def load_transformers_checked(model_class: type, folder: Path, tower: str) -> Any:
    """`model_class.from_pretrained(folder)` with the safe loader, refusing missing or mis-sized tensors.

    The folder may hold `save_pretrained` output or a whole-CLIP Hub snapshot (`CLIPConfig`,
    both towers in one file): the other tower's tensors are skipped silently.
    """
    weights = weights_file(folder, "transformers")
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the other tower's skipped tensors are expected
    try:
        with quiet_transformers_bars():
            model, loading = model_class.from_pretrained(
                str(folder),
                use_safetensors=weights.suffix == ".safetensors",
                weights_only=True,
                output_loading_info=True,
            )
    finally:
        transformers_logging.set_verbosity(verbosity)
    # transformers would leave missing tensors randomly initialised: never score with those.
    absent = sorted(loading.get("missing_keys", [])) + sorted(str(k) for k in loading.get("mismatched_keys", []))
    if absent:
        raise WeightsFormatError(
            f"backbone folder {folder}: {weights.name} lacks or mis-sizes {len(absent)} {tower} tensor(s) "
            f"(first: {absent[0]}); it is not a CLIP {tower} model of the size its config.json gives"
        )
    return model
