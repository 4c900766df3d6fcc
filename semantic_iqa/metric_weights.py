"""Weights I/O written once for every metric: `from_pretrained`, `save_pretrained`, `push_to_hub`.

The keywords mean what they mean in `huggingface_hub.ModelHubMixin`; what is particular to a
metric comes from its hooks (`semantic_iqa.metric.Metric`: `config_class`, `load_encoder`,
`from_parts`, `head_parts`, `load_head_parts`, `model_card`).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .devices import resolve_device
from .errors import UnknownOptionError, WeightsConfigError, WeightsFormatError
from .hub import push_folder, resolve_weights
from .hub_access import hub_options
from .outputs import check_output_folder
from .registry import MetricInfo, metric_info
from .weights import CONFIG_NAME, check_folder_files, read_folder, read_head_files, write_folder


class WeightsIO:
    """Mixin of `Metric`: the weights folder (local or on the Hub) <-> the model."""

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
    ) -> Any:
        """Load a weights folder (local path or Hub repo id; `None` = the metric's default).

        The model comes back in eval mode on `device` ("auto" = CUDA if available), its
        backbones in `precision` ("fp32", "bf16", or "auto": bf16 where the device does it natively,
        `resolve_precision`; heads stay float32).
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


def _check_options(cls: type, options: dict[str, Any]) -> None:
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
