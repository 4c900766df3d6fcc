"""What every metric shares: weights I/O (`from_pretrained` / `save_pretrained` /
`push_to_hub`) and batch scoring of any input kind (`predict`), written once.

A metric is an `nn.Module` subclass of `Metric` that says what it is made of:

- `name` (its registry name), `config_class` (its settings dataclass: `to_dict`,
  `from_dict`, `backbone_specs`, `with_backbones`), `encoder_classes` (role -> frozen
  encoder class);
- `from_parts(config, encoders)`: the metric with fresh heads; `frozen_encoders()`: them by role;
- `head_parts()` / `load_head_parts(parts)`: the trained tensors, as named safetensors files;
- `image_transform()`: a picklable function decoding one image into its preprocessed
  [3, S, S] tensor in [0, 1];
- `score_batch(images, extras, **options)`: the scores of one batch of preprocessed images;
- `model_card()`: the README.md of its weights folder.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .backbones import FrozenEncoder
from .config import BackboneSpec
from .devices import resolve_device
from .errors import InvalidOptionError, UnknownOptionError, WeightsConfigError, WeightsFormatError
from .hub import push_folder, resolve_weights
from .hub_access import hub_options
from .inputs import ImageLike, as_image_list, check_same_length
from .outputs import check_output_folder
from .registry import MetricInfo, metric_info
from .scoring import iterate_batches
from .weights import CONFIG_NAME, check_folder_files, read_folder, read_head_files, write_folder

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Metric(nn.Module):
    """Base class of the metrics: frozen encoders plus trained heads, one weights folder."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    encoder_classes: ClassVar[dict[str, type[FrozenEncoder]]]

    config: Any

    # -- what each metric provides --------------------------------------------------------
    @classmethod
    def load_encoder(cls, role: str, spec: BackboneSpec, folder: Path) -> FrozenEncoder:
        """The frozen encoder of `role`, from `folder / spec.path` or the Hub (override for options)."""
        return cls.encoder_classes[role].from_spec(spec, folder)

    @classmethod
    def from_parts(cls, config: Any, encoders: dict[str, FrozenEncoder], **options: Any) -> Metric:
        raise NotImplementedError

    def frozen_encoders(self) -> dict[str, FrozenEncoder]:
        """The frozen encoders by role."""
        raise NotImplementedError

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        raise NotImplementedError

    def image_transform(self) -> Callable[[ImageLike], torch.Tensor]:
        raise NotImplementedError

    def score_batch(self, images: dict[str, torch.Tensor], extras: dict[str, list[Any]], **options: Any) -> Any:
        raise NotImplementedError

    def model_card(self) -> str:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    @property
    def info(self) -> MetricInfo:
        """The registry entry: FR or NR, which way is better, the score range."""
        return metric_info(self.name)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        revision: str | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        metric: MetricInfo | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        **options: Any,
    ) -> Metric:
        """Load a weights folder (local path or Hub repo id; `None` = the metric's default).

        The model comes back in eval mode on `device` ("auto" = CUDA if available), its
        backbones in `precision` ("fp32", or "bf16": faster on GPUs; heads stay float32).
        The folder is untrusted input: every setting is checked (type, and the range the
        architecture allows: `WeightsConfigError`), and every file it names must lie inside it
        and have its recorded sha256 (`WeightsIntegrityError`), all before any backbone is built.

        `revision`, `token`, `cache_dir`, `local_files_only` and `force_download` mean what they
        mean in `huggingface_hub.ModelHubMixin.from_pretrained`; all but `revision` (the weights
        repo's) also apply to the Hub backbones the weights reference. Other keywords are the
        metric's options (`from_parts`); an unknown one raises `UnknownOptionError` (a `TypeError`)
        before anything is downloaded.
        """
        _check_options(cls, options)
        target = resolve_device(device)
        with hub_options(
            token=token, cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download
        ):
            folder = resolve_weights(name_or_path, revision, metric or metric_info(cls.name))
            contents = read_folder(folder)
            if contents.metric != cls.name:
                raise WeightsFormatError(f"{folder} holds {contents.metric!r} weights, not {cls.name!r}")
            config_path = folder / CONFIG_NAME
            try:
                config = cls.config_class.from_dict(contents.settings)
            except WeightsConfigError as exc:
                raise exc.in_file(config_path) from None
            specs = config.backbone_specs()
            check_folder_files(folder, contents, [spec.path for spec in specs.values() if spec.path is not None])
            encoders = {role: cls.load_encoder(role, spec, folder) for role, spec in specs.items()}
        check_encoders = getattr(config, "check_encoders", None)  # settings that must fit the built backbones
        if check_encoders is not None:
            try:
                check_encoders(encoders)
            except WeightsConfigError as exc:
                raise exc.in_file(config_path) from None
        model = cls.from_parts(config, encoders, **options)
        try:
            model.load_head_parts(read_head_files(folder, contents.head_files))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise WeightsFormatError(f"{folder}: head tensors do not fit: {exc}") from None
        return model.to(target).set_precision(precision).eval()

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a complete weights folder that `from_pretrained` reads; returns its path.

        `folder` may be missing, empty, or a weights folder of this metric (rewritten); any
        other non-empty folder (another metric's weights, other files) only with `overwrite`
        (`semantic_iqa.outputs.check_output_folder`).
        """
        folder = Path(folder)
        check_output_folder(folder, metric=self.name, overwrite=overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        stored = []
        encoders = self.frozen_encoders()
        for role, spec in self.config.backbone_specs().items():
            if spec.path is not None:
                encoders[role].save(folder / spec.path)
                stored.append(spec.path)
        write_folder(folder, self.name, self.config.to_dict(), self.head_parts(), stored, self.model_card())
        return folder

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
        create_pr: bool = False,
    ) -> str:
        """Upload this model's weights folder (as `save_pretrained` writes it) to a Hub repo.

        The repo is created if needed. Returns the URL of the commit.
        """
        with tempfile.TemporaryDirectory() as staging:
            folder = self.save_pretrained(Path(staging) / "weights")
            return push_folder(
                folder,
                repo_id,
                revision=revision,
                private=private,
                token=token,
                commit_message=commit_message or f"Upload {self.info.title} weights",
                create_pr=create_pr,
            )

    @property
    def precision(self) -> str:
        """Backbone precision: "fp32" or "bf16" (the heads always run in float32)."""
        dtype = next(next(iter(self.frozen_encoders().values())).parameters()).dtype
        return {value: key for key, value in PRECISIONS.items()}.get(dtype, str(dtype))

    def set_precision(self, precision: str) -> Metric:
        """Run the frozen encoders in "fp32" or "bf16"; the trained parts stay in float32. Returns self."""
        if precision not in PRECISIONS:
            raise InvalidOptionError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        for encoder in self.frozen_encoders().values():
            encoder.to(PRECISIONS[precision])
        return self

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
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
        outputs = []
        columns = {**images, **(extras or {})}
        for batch in iterate_batches(
            columns,
            list(images),
            self.image_transform(),
            batch_size=batch_size,
            workers=workers,
            device=self.device,
            progress=progress,
            unit="pair" if len(images) == 2 else "image",
        ):
            if batch.failures:
                raise batch.failures[0][1]
            outputs.append(self.score_batch(batch.images, batch.extras, **options))
        return outputs


def _check_options(cls: type[Metric], options: dict[str, Any]) -> None:
    """Refuse keywords `cls.from_parts` does not take, naming `from_pretrained` (not an internal function)."""
    parameters = inspect.signature(cls.from_parts).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [
        name
        for name, p in parameters.items()
        if name not in ("config", "encoders")
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [name for name in options if name not in accepted]
    if unknown:
        own = "revision, device, precision, metric, token, cache_dir, local_files_only, force_download"
        raise UnknownOptionError(
            f"{cls.__name__}.from_pretrained() got an unexpected keyword argument {unknown[0]!r}; it takes "
            f"{own}{''.join(f', {name}' for name in accepted)}"
        )


def image_columns(names: Sequence[str], values: Sequence[Any]) -> dict[str, list[ImageLike]]:
    """Validate per-role image arguments (one image, a list, or a batch each) into equal-length columns."""
    columns = {name: as_image_list(value, name) for name, value in zip(names, values, strict=True)}
    first, *others = columns.values()
    for other in others:
        check_same_length(first, other)
    return columns
