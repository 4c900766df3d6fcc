"""The authors' peft LoRA adapter: its settings checked, its weights merged into the branches' ViTs.

The authors wrap their whole `PerceptualModel` with peft (`LoraConfig(r=16, lora_alpha=0.5,
target_modules=["qkv"])` in their training script) and save it with `save_pretrained`: the
adapter folder holds `adapter_config.json` and `adapter_model.safetensors` (or `.bin`), whose
keys name each targeted Linear of the wrapped model:

    base_model.model.extractor_list.<i>.model.<layer>.lora_A.weight   [r, in]
    base_model.model.extractor_list.<i>.model.<layer>.lora_B.weight   [out, r]

with extractor i the i-th branch of the model type and <layer> a Linear of its ViT in DINO's
layout (`blocks.3.attn.qkv`), which is timm's. A LoRA Linear computes `W x + s B (A x)`
(dropout is off at inference), so merging is `W <- W + s B A`, with s = lora_alpha / r
(`use_rslora`: lora_alpha / sqrt(r)), r and alpha per layer from `rank_pattern` and
`alpha_pattern` as peft reads them. Settings that make an adapter anything else are refused
by name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from ...errors import ConversionError
from .release import Release, load_tensors, sha256_bytes

PREFIX = "base_model.model.extractor_list."
_KEY = re.compile(r"^base_model\.model\.extractor_list\.(\d+)\.model\.(.+)\.lora_([AB])\.weight$")

# Settings whose value changes what the adapter computes, with the one value understood.
NEUTRAL: dict[str, Any] = {
    "use_dora": False,
    "fan_in_fan_out": False,
    "bias": "none",
    "lora_bias": False,
    "use_qalora": False,
}
# Settings that only matter for training, saving or bookkeeping: any value is fine.
IGNORED = {
    "task_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode",
    "lora_dropout", "megatron_core", "qalora_group_size", "eva_config", "loftq_config", "ensure_weight_tying",
}  # fmt: skip
HONOURED = {"peft_type", "r", "lora_alpha", "target_modules", "use_rslora", "rank_pattern", "alpha_pattern"}
# Initialisations that leave the base weights as they are (pissa, olora, corda, loftq, lora_ga change them).
PLAIN_INITS = (True, False, "gaussian", "eva", "orthogonal")


@dataclass(frozen=True)
class LoraSettings:
    """What the merge needs of `adapter_config.json`."""

    r: int
    alpha: float
    target_modules: tuple[str, ...] | str
    use_rslora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)

    def targets(self, name: str) -> bool:
        """Whether peft wraps the module `name` (its name in the authors' `PerceptualModel`)."""
        if isinstance(self.target_modules, str):
            return re.fullmatch(self.target_modules, name) is not None
        return any(self.targets_one(target, name) for target in self.target_modules)

    @staticmethod
    def targets_one(target: str, name: str) -> bool:
        """Whether the `target_modules` entry `target` names the module `name` (itself, or its last parts)."""
        return name == target or name.endswith("." + target)

    def scaling(self, name: str) -> tuple[int, float]:
        """(r, s) of the module `name`: `rank_pattern` / `alpha_pattern` first, as peft matches them."""
        r = _pattern_value(self.rank_pattern, name, self.r)
        alpha = _pattern_value(self.alpha_pattern, name, self.alpha)
        return r, alpha / (math.sqrt(r) if self.use_rslora else r)

    def provenance(self) -> dict[str, Any]:
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        body = {"r": self.r, "lora_alpha": self.alpha, "target_modules": targets, "use_rslora": self.use_rslora}
        patterns = {"rank_pattern": self.rank_pattern, "alpha_pattern": self.alpha_pattern}
        return body | {key: value for key, value in patterns.items() if value}


def _pattern_value(pattern: dict[str, Any], name: str, default: Any) -> Any:
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def read_settings(release: Release, folder: str) -> LoraSettings:
    """The checked settings of `<folder>/adapter_config.json`; `ConversionError` naming what is wrong."""
    label = release.label(f"{folder}/adapter_config.json")
    try:
        raw = json.loads(release.read(f"{folder}/adapter_config.json"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{label} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConversionError(f"{label} is not a JSON object: not a peft adapter config")
    if raw.get("peft_type") != "LORA":
        raise ConversionError(f"{label}: peft_type is {raw.get('peft_type')!r}; only LoRA adapters (LORA) convert")
    problems = [f"{k} is {raw[k]!r} (understood: {v!r})" for k, v in NEUTRAL.items() if k in raw and raw[k] != v]
    if raw.get("init_lora_weights", True) not in PLAIN_INITS:
        problems.append(f"init_lora_weights is {raw['init_lora_weights']!r}, which changes the base weights")
    for key, value in raw.items():
        if key not in NEUTRAL and key not in IGNORED and key not in HONOURED and key != "init_lora_weights" and value:
            problems.append(f"{key} is {value!r} (not understood: only an empty value converts)")
    if problems:
        raise ConversionError(f"{label}: a LoRA adapter this converter cannot merge exactly: " + "; ".join(problems))
    return _settings(raw, label)


def _settings(raw: dict[str, Any], label: str) -> LoraSettings:
    r, alpha, targets = raw.get("r"), raw.get("lora_alpha"), raw.get("target_modules")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ConversionError(f"{label}: r is {r!r}; expected a positive integer")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise ConversionError(f"{label}: lora_alpha is {alpha!r}; expected a number")
    if isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        targets = tuple(targets)
    elif not isinstance(targets, str) or targets == "all-linear":
        raise ConversionError(f"{label}: target_modules is {targets!r}; expected module names or a regular expression")
    patterns = {}
    for key, kind in (("rank_pattern", int), ("alpha_pattern", (int, float))):
        pattern = raw.get(key) or {}
        if not isinstance(pattern, dict) or not all(isinstance(v, kind) for v in pattern.values()):
            raise ConversionError(f"{label}: {key} is {pattern!r}; expected module names -> numbers")
        patterns[key] = pattern
    expressions = [targets] if isinstance(targets, str) else []
    for expression in [*expressions, *(rf"(.*\.)?({key})$" for pattern in patterns.values() for key in pattern)]:
        try:
            re.compile(expression)
        except re.error as exc:
            raise ConversionError(f"{label}: {expression!r} is not a regular expression: {exc}") from None
    return LoraSettings(r, float(alpha), targets, bool(raw.get("use_rslora", False)), **patterns)


def read_weights(release: Release, folder: str) -> tuple[dict[str, torch.Tensor], str, str]:
    """(tensors, member name, sha256) of the adapter's weights: `.safetensors` first, as peft reads them."""
    for name in (f"{folder}/adapter_model.safetensors", f"{folder}/adapter_model.bin"):
        if release.has(name):
            label, data = release.label(name), release.read(name)
            if name.endswith(".bin"):
                tensors = load_tensors(data, label)
            else:
                try:
                    tensors = load_safetensors(data)
                except Exception as exc:  # safetensors raises its own error types for a damaged header
                    raise ConversionError(f"cannot read {label} as safetensors: {exc}") from None
            if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
                raise ConversionError(f"{label} is not a dict of tensors: not a peft adapter's weights")
            return tensors, name, sha256_bytes(data)
    release.require(f"{folder}/adapter_model.safetensors", "the LoRA weights, or adapter_model.bin")
    raise AssertionError("unreachable")


def merge_lora(
    models: list[nn.Module],
    settings: LoraSettings,
    tensors: dict[str, torch.Tensor],
    label: str,
    *,
    check_only: bool = False,
) -> int:
    """Add `s B A` to every targeted Linear of `models` (branch i = extractor i); returns how many.

    check_only: check names and shapes, change nothing (before the backbones are loaded).

    Raises:
        ConversionError: a key that names no Linear of a branch, one its config does not
            target, a targeted layer without weights, a target that matched nothing, or a
            tensor of the wrong shape.
    """
    plan = _plan(models, settings, tensors, label)
    for layer, a, b, scaling in plan:
        if not check_only:
            with torch.no_grad():  # in float64, rounded once to the layer's dtype
                merged = layer.weight.double() + scaling * (b.double() @ a.double())
                layer.weight.copy_(merged.to(layer.weight.dtype))
    return len(plan)


def _plan(
    models: list[nn.Module], settings: LoraSettings, tensors: dict[str, torch.Tensor], label: str
) -> list[tuple[nn.Linear, torch.Tensor, torch.Tensor, float]]:
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in tensors.items():
        match = _KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        pairs.setdefault((int(match[1]), match[2]), {})[match[3]] = value
    linears = {
        (index, name): module
        for index, model in enumerate(models)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name != "head"  # `head` is the CLIP projection: no module of theirs
    }
    unknown += [f"{PREFIX}{i}.model.{name}.lora_A/B" for i, name in pairs if (i, name) not in linears]
    if unknown:
        raise ConversionError(f"{label}: LoRA weights of no Linear layer of a DreamSim branch: {_listed(unknown)}")
    authors = {key: f"extractor_list.{key[0]}.model.{key[1]}" for key in linears}
    untargeted = [authors[key] for key in pairs if not settings.targets(authors[key])]
    missing = [authors[key] for key in linears if settings.targets(authors[key]) and key not in pairs]
    if untargeted or missing:
        what = [f"weights for {_listed(untargeted)}, which target_modules does not name"] if untargeted else []
        what += [f"no weights for {_listed(missing)}, which target_modules names"] if missing else []
        raise ConversionError(f"{label}: the adapter does not match its config: {'; '.join(what)}")
    if not isinstance(settings.target_modules, str):
        unmatched = [t for t in settings.target_modules if not any(settings.targets_one(t, authors[k]) for k in pairs)]
        if unmatched:
            raise ConversionError(f"{label}: target_modules {unmatched} matched no layer of the DreamSim branches")
    return [
        _checked(linears[key], pair, settings.scaling(authors[key]), f"{label}: {PREFIX}{key[0]}.model.{key[1]}")
        for key, pair in sorted(pairs.items())
    ]


def _checked(
    layer: nn.Linear, pair: dict[str, torch.Tensor], scaling: tuple[int, float], name: str
) -> tuple[nn.Linear, torch.Tensor, torch.Tensor, float]:
    r, s = scaling
    if set(pair) != {"A", "B"}:
        raise ConversionError(f"{name}: has lora_{'A' if 'A' in pair else 'B'} only; both lora_A and lora_B are needed")
    out_features, in_features = layer.weight.shape
    a, b = pair["A"], pair["B"]
    if tuple(a.shape) != (r, in_features) or tuple(b.shape) != (out_features, r):
        raise ConversionError(
            f"{name}: lora_A is {tuple(a.shape)} and lora_B {tuple(b.shape)}; this layer ({out_features} x "
            f"{in_features}, r = {r}) needs ({r}, {in_features}) and ({out_features}, {r})"
        )
    return layer, a, b, s


def _listed(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
