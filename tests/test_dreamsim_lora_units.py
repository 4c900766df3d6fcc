"""`metrics/dreamsim/lora.py` in seconds: small real peft adapters, checked against peft's own merge.

The slow converter tests (tests/test_dreamsim_convert.py) run full-size releases; these build a
toy of the authors' `PerceptualModel` (`extractor_list.<i>.model.blocks.<j>.attn.qkv`, two
branches of different widths, one with a `head`), wrap it with peft's `get_peft_model`, write it
with `save_pretrained` (peft's own adapter files) and compare our merge with peft's
`merge_and_unload`. Each refusal is checked by its whole message (what a user reads).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from torch import nn

from semantic_iqa.errors import ConversionError
from semantic_iqa.metrics.dreamsim.lora import LoraSettings, merge_lora, read_settings, read_weights
from semantic_iqa.metrics.dreamsim.release import Release

LORA = "x_lora"
KEY = "base_model.model.extractor_list.{}.model.blocks.{}.attn.{}.lora_{}.weight"


def authors_toy() -> nn.Module:
    """The authors' layout: `extractor_list.<i>.model` is branch i's ViT (widths 8 and 6; branch 1 has a head)."""
    toy = nn.Module()
    toy.extractor_list = nn.ModuleList()
    for width in (8, 6):
        vit = nn.Module()
        vit.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in vit.blocks:
            block.attn = nn.Module()
            block.attn.qkv, block.attn.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        vit.head = nn.Linear(width, 4) if width == 6 else None
        toy.extractor_list.append(nn.Module())
        toy.extractor_list[-1].model = vit
    return toy


def adapter(root: Path, seed: int = 0, **settings: object) -> tuple[list[nn.Module], nn.Module]:
    """peft's adapter of a random toy under `root/x_lora`: (the branches before LoRA, peft's merged model)."""
    torch.manual_seed(seed)
    authors = authors_toy()
    bases = [copy.deepcopy(extractor.model) for extractor in authors.extractor_list]
    config = {"r": 4, "lora_alpha": 0.5, "target_modules": ["qkv"], "init_lora_weights": False} | settings
    peft_model = get_peft_model(authors, LoraConfig(**config))
    peft_model.save_pretrained(str(root / LORA))
    return bases, peft_model.merge_and_unload()


def merged_by_us(root: Path, models: list[nn.Module], **kwargs: bool) -> int:
    release = Release(root)
    tensors, _, _ = read_weights(release, LORA)
    return merge_lora(models, read_settings(release, LORA), tensors, "label", **kwargs)


PEFT_SETTINGS = {
    "plain": ({}, 4),
    "patterns and rslora": (
        {
            "lora_alpha": 2.0,
            "target_modules": ["qkv", "proj"],
            "use_rslora": True,
            "rank_pattern": {"extractor_list.1.model.blocks.0.attn.qkv": 2},
            "alpha_pattern": {"blocks.1.attn.proj": 3.0},
        },
        8,
    ),  # fmt: skip
    "regular expression": ({"target_modules": r".*\.blocks\.1\.attn\.(qkv|proj)"}, 4),
}


@pytest.mark.parametrize("case", list(PEFT_SETTINGS))
def test_the_merge_is_pefts_merge(tmp_path, case):
    settings, layers = PEFT_SETTINGS[case]
    bases, theirs = adapter(tmp_path, **settings)
    ours = copy.deepcopy(bases)
    assert merged_by_us(tmp_path, ours) == layers
    for mine, extractor in zip(ours, theirs.extractor_list, strict=True):
        expected = extractor.model.state_dict()
        assert set(mine.state_dict()) == set(expected)
        for name, tensor in mine.state_dict().items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6, msg=name)
    changed = [name for base, mine in zip(bases, ours, strict=True) for name, t in mine.state_dict().items()
               if (t - base.state_dict()[name]).abs().max() > 1e-3]  # fmt: skip
    assert len(changed) == layers  # each merged layer's weight moved far more than the tolerance


def test_check_only_counts_and_changes_nothing_and_the_merge_is_rounded_once(tmp_path):
    bases, _ = adapter(tmp_path)
    models = copy.deepcopy(bases)
    assert merged_by_us(tmp_path, models, check_only=True) == 4
    for base, model in zip(bases, models, strict=True):
        assert all(torch.equal(t, base.state_dict()[n]) for n, t in model.state_dict().items())
    models = [model.double() for model in models]
    merged_by_us(tmp_path, models)
    tensors = load_file(tmp_path / LORA / "adapter_model.safetensors")
    a, b = tensors[KEY.format(1, 0, "qkv", "A")].double(), tensors[KEY.format(1, 0, "qkv", "B")].double()
    expected = bases[1].blocks[0].attn.qkv.weight.double() + 0.5 / 4 * (b @ a)
    assert torch.equal(models[1].blocks[0].attn.qkv.weight, expected), "in float64, as the docstring says"
    assert torch.equal(models[1].head.weight, bases[1].head.weight.double())


def test_which_modules_a_target_names_and_their_scaling():
    listed = LoraSettings(16, 0.5, ("qkv", "fc1"))
    assert listed.targets("e.0.model.blocks.3.attn.qkv") and listed.targets("qkv") and listed.targets("a.fc1")
    assert not any(listed.targets(name) for name in ("a.xqkv", "a.qkv.b", "qkv2", "fc"))
    expression = LoraSettings(16, 0.5, r"a\.qkv")
    assert expression.targets("a.qkv") and not expression.targets("a.qkv.b") and not expression.targets("x.a.qkv")
    assert listed.scaling("a.qkv") == (16, 0.5 / 16)
    patterned = LoraSettings(16, 0.5, ("qkv",), use_rslora=True, rank_pattern={"blocks.0.attn.qkv": 4},
                             alpha_pattern={"blocks.0.attn.qkv": 6.0, "qkv": 2.0})  # fmt: skip
    assert patterned.scaling("e.0.model.blocks.0.attn.qkv") == (4, 6.0 / 2)  # the first key that matches
    assert patterned.scaling("e.0.model.blocks.10.attn.qkv") == (16, 2.0 / 4)
    assert patterned.scaling("e.0.model.subblocks.0.attn.qkv") == (16, 2.0 / 4)  # a key starts after a dot
    assert patterned.scaling("e.0.model.blocks.0.attn.qkv.x") == (16, 0.5 / 4)  # ... and ends the name
    assert listed.provenance() == {"r": 16, "lora_alpha": 0.5, "target_modules": ["qkv", "fc1"], "use_rslora": False}
    assert patterned.provenance() == {
        "r": 16, "lora_alpha": 0.5, "target_modules": ["qkv"], "use_rslora": True,
        "rank_pattern": {"blocks.0.attn.qkv": 4}, "alpha_pattern": {"blocks.0.attn.qkv": 6.0, "qkv": 2.0},
    }  # fmt: skip
    assert expression.provenance()["target_modules"] == r"a\.qkv"
    assert math.isclose(LoraSettings(9, 3.0, "q").scaling("q")[1], 1 / 3)


@pytest.fixture(scope="module")
def peft_config(tmp_path_factory) -> dict:
    """The adapter_config.json that peft writes for the toy (its defaults, init_lora_weights=False)."""
    root = tmp_path_factory.mktemp("peft")
    adapter(root)
    return json.loads((root / LORA / "adapter_config.json").read_text())


def settings_of(tmp_path: Path, raw: object) -> LoraSettings:
    (tmp_path / LORA).mkdir(exist_ok=True)
    (tmp_path / LORA / "adapter_config.json").write_text(json.dumps(raw))
    return read_settings(Release(tmp_path), LORA)


ACCEPTED = {  # changes to peft's config that still merge exactly
    "training and bookkeeping": {
        "task_type": "FEATURE_EXTRACTION", "auto_mapping": {"a": 1}, "peft_version": "9", "inference_mode": True,
        "base_model_name_or_path": "x", "revision": "main", "lora_dropout": 0.1, "megatron_core": "m",
        "qalora_group_size": 8, "eva_config": {"rho": 2}, "loftq_config": {"bits": 4}, "ensure_weight_tying": True,
    },
    "honoured": {"use_rslora": True, "rank_pattern": {"qkv": 2}, "alpha_pattern": {"qkv": 1}, "lora_alpha": 3},
    "neutral values": {"use_dora": False, "fan_in_fan_out": False, "bias": "none", "lora_bias": False},
    "unknown but empty": {"layers_to_transform": None, "modules_to_save": [], "new_setting": 0},
}  # fmt: skip
INITS = (True, False, "gaussian", "eva", "orthogonal")


@pytest.mark.parametrize("case", [*ACCEPTED, *(f"init {init}" for init in INITS), "no init", "r 1", "no rslora"])
def test_settings_that_keep_the_merge_exact_are_accepted(tmp_path, peft_config, case):
    raw = peft_config | ACCEPTED.get(case, {})
    if case.startswith("init"):
        raw["init_lora_weights"] = INITS[[f"init {i}" for i in INITS].index(case)]
    raw |= {"r": 1} if case == "r 1" else {}
    for key in {"no init": ["init_lora_weights"], "no rslora": ["use_rslora"]}.get(case, []):  # older peft
        del raw[key]
    settings = settings_of(tmp_path, raw)
    assert (settings.r, settings.target_modules) == (raw["r"], ("qkv",)) and isinstance(settings.alpha, float)
    assert settings.alpha == (3.0 if case == "honoured" else 0.5)
    assert settings.use_rslora is (case == "honoured") and settings.rank_pattern == raw["rank_pattern"]
    assert settings.alpha_pattern == raw["alpha_pattern"]


UNMERGEABLE = "a LoRA adapter this converter cannot merge exactly: "
TARGETS, NUMBERS = "; expected module names or a regular expression", "; expected module names -> numbers"
REFUSED = {  # changes to peft's config, and the whole message after the file's path
    "not an object": ([1], " is not a JSON object: not a peft adapter config"),
    "not lora": ({"peft_type": "IA3"}, ": peft_type is 'IA3'; only LoRA adapters (LORA) convert"),
    "no peft_type": ({"peft_type": None}, ": peft_type is None; only LoRA adapters (LORA) convert"),
    "dora": ({"use_dora": True}, f": {UNMERGEABLE}use_dora is True (understood: False)"),
    "two": ({"bias": "all", "use_qalora": True}, f": {UNMERGEABLE}bias is 'all' (understood: 'none'); "
            "use_qalora is True (understood: False)"),  # fmt: skip
    "pissa": ({"init_lora_weights": "pissa"}, f": {UNMERGEABLE}init_lora_weights is 'pissa', which changes the "
              "base weights"),
    "unknown": ({"layers_pattern": "blocks"}, f": {UNMERGEABLE}layers_pattern is 'blocks' (not understood: only an "
                "empty value converts)"),  # fmt: skip
    "r zero": ({"r": 0}, ": r is 0; expected a positive integer"),
    "r bool": ({"r": True}, ": r is True; expected a positive integer"),
    "r text": ({"r": "4"}, ": r is '4'; expected a positive integer"),
    "alpha bool": ({"lora_alpha": True}, ": lora_alpha is True; expected a number"),
    "alpha text": ({"lora_alpha": "1"}, ": lora_alpha is '1'; expected a number"),
    "all-linear": ({"target_modules": "all-linear"}, ": target_modules is 'all-linear'" + TARGETS),
    "no targets": ({"target_modules": []}, ": target_modules is []" + TARGETS),
    "number targets": ({"target_modules": [1]}, ": target_modules is [1]" + TARGETS),
    "rank pattern": ({"rank_pattern": {"qkv": 2.5}}, ": rank_pattern is {'qkv': 2.5}" + NUMBERS),
    "alpha pattern": ({"alpha_pattern": ["qkv"]}, ": alpha_pattern is ['qkv']" + NUMBERS),
    "alpha text value": ({"alpha_pattern": {"qkv": "2"}}, ": alpha_pattern is {'qkv': '2'}" + NUMBERS),
    "bad expression": ({"target_modules": "(qkv"}, ": '(qkv' is not a regular expression: missing ), unterminated "
                       "subpattern at position 0"),  # fmt: skip
    "bad pattern key": ({"rank_pattern": {"q[": 2}}, r": '(.*\\.)?(q[)$' is not a regular expression: unterminated "
                        "character set at position 9"),  # fmt: skip
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSED))
def test_settings_that_change_the_merge_are_refused_by_name(tmp_path, peft_config, case):
    change, message = REFUSED[case]
    raw = change if isinstance(change, list) else peft_config | change
    expected = str(tmp_path / LORA / "adapter_config.json") + message
    with pytest.raises(ConversionError, match="^" + re.escape(expected) + "$"):
        settings_of(tmp_path, raw)
    (tmp_path / LORA / "adapter_config.json").write_bytes(b"{r: 16")
    with pytest.raises(ConversionError, match=re.escape(f"{tmp_path / LORA}/adapter_config.json is not JSON: Expect")):
        read_settings(Release(tmp_path), LORA)


def test_the_weights_file_safetensors_first_then_bin_then_a_clear_refusal(tmp_path):
    adapter(tmp_path)
    folder, release = tmp_path / LORA, Release(tmp_path)
    safetensors = (folder / "adapter_model.safetensors").read_bytes()
    torch.save({"other": torch.zeros(2)}, folder / "adapter_model.bin")
    tensors, name, sha = read_weights(release, LORA)
    assert (name, sha) == (f"{LORA}/adapter_model.safetensors", hashlib.sha256(safetensors).hexdigest())
    assert set(tensors) == set(load_file(folder / "adapter_model.safetensors")) and len(tensors) == 8
    (folder / "adapter_model.safetensors").unlink()
    tensors, name, sha = read_weights(Release(tmp_path), LORA)
    assert (set(tensors), name) == ({"other"}, f"{LORA}/adapter_model.bin")
    assert sha == hashlib.sha256((folder / "adapter_model.bin").read_bytes()).hexdigest()
    for content in ([torch.zeros(2)], {"a": 1}):
        torch.save(content, folder / "adapter_model.bin")
        with pytest.raises(ConversionError, match=f"^{folder}/adapter_model.bin is not a dict of tensors: not a peft"):
            read_weights(Release(tmp_path), LORA)
    (folder / "adapter_model.bin").write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ConversionError, match=f"^cannot read {folder}/adapter_model.bin as a torch checkpoint: "):
        read_weights(Release(tmp_path), LORA)
    (folder / "adapter_model.bin").unlink()
    with pytest.raises(
        ConversionError, match=f"has no {LORA}/adapter_model.safetensors \\(the LoRA weights, or adapter"
    ):
        read_weights(Release(tmp_path), LORA)
    (folder / "adapter_model.safetensors").write_bytes(safetensors[:-9])
    with pytest.raises(ConversionError, match=f"^cannot read {folder}/adapter_model.safetensors as safetensors: "):
        read_weights(Release(tmp_path), LORA)


A, B = torch.zeros(4, 8), torch.zeros(24, 4)
PLAN_ERRORS = {  # changes to the toy's adapter tensors (two branches, blocks 0 and 1, qkv), and the message
    "not a lora key": ({"blocks.0.attn.qkv.weight": A}, "LoRA weights of no Linear layer of a DreamSim branch: "
                       "blocks.0.attn.qkv.weight"),  # fmt: skip
    "no such branch": ({KEY.format(2, 0, "qkv", "A"): A}, "LoRA weights of no Linear layer of a DreamSim branch: "
                       "base_model.model.extractor_list.2.model.blocks.0.attn.qkv.lora_A/B"),  # fmt: skip
    "the head": ({"base_model.model.extractor_list.1.model.head.lora_A.weight": A},
                 "no Linear layer of a DreamSim branch: base_model.model.extractor_list.1.model.head.lora_A/B"),
    "untargeted": ({KEY.format(0, 1, "proj", "A"): A, KEY.format(0, 1, "proj", "B"): A},
                   "the adapter does not match its config: weights for extractor_list.0.model.blocks.1.attn.proj, "
                   "which target_modules does not name"),
    "missing": ({KEY.format(1, 1, "qkv", "A"): None, KEY.format(1, 1, "qkv", "B"): None},
                "the adapter does not match its config: no weights for extractor_list.1.model.blocks.1.attn.qkv, "
                "which target_modules names"),
    "both": ({KEY.format(1, 1, "qkv", "A"): None, KEY.format(1, 1, "qkv", "B"): None, KEY.format(0, 0, "proj", "A"): A},
             "config: weights for extractor_list.0.model.blocks.0.attn.proj, which target_modules does not name; "
             "no weights for extractor_list.1.model.blocks.1.attn.qkv, which target_modules names"),
    "a only": ({KEY.format(0, 1, "qkv", "B"): None}, "label: base_model.model.extractor_list.0.model.blocks.1.attn"
               ".qkv: has lora_A only; both lora_A and lora_B are needed"),  # fmt: skip
    "b only": ({KEY.format(0, 1, "qkv", "A"): None}, "blocks.1.attn.qkv: has lora_B only; both lora_A and lora_B are "
               "needed"),  # fmt: skip
    "a shape": ({KEY.format(0, 0, "qkv", "A"): torch.zeros(4, 9)}, "extractor_list.0.model.blocks.0.attn.qkv: lora_A "
                "is (4, 9) and lora_B (24, 4); this layer (24 x 8, r = 4) needs (4, 8) and (24, 4)"),  # fmt: skip
    "b shape": ({KEY.format(1, 0, "qkv", "B"): torch.zeros(18, 3)}, r"lora_A is (4, 6) and lora_B (18, 3); this layer "
                "(18 x 6, r = 4) needs (4, 6) and (18, 4)"),  # fmt: skip
    "seven unknown": ({f"k{i}": A for i in range(7)}, "branch: k0, k1, k2, k3, k4 and 2 more"),
    "five unknown": ({f"k{i}": A for i in range(5)}, "branch: k0, k1, k2, k3, k4"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PLAN_ERRORS))
def test_an_adapter_that_does_not_fit_the_branches_is_refused_by_name(tmp_path, case):
    bases, _ = adapter(tmp_path)
    release = Release(tmp_path)
    tensors, _, _ = read_weights(release, LORA)
    change, message = PLAN_ERRORS[case]
    tensors = {k: v for k, v in (tensors | change).items() if v is not None}
    with pytest.raises(ConversionError, match=re.escape(message) + "$"):
        merge_lora(bases, read_settings(release, LORA), tensors, "label", check_only=True)


def test_a_listed_target_that_matches_no_layer_is_refused(tmp_path):
    bases, _ = adapter(tmp_path)
    config = json.loads((tmp_path / LORA / "adapter_config.json").read_text())
    (tmp_path / LORA / "adapter_config.json").write_text(json.dumps(config | {"target_modules": ["to_q", "qkv", "x"]}))
    release = Release(tmp_path)
    tensors, _, _ = read_weights(release, LORA)
    with pytest.raises(
        ConversionError, match=re.escape("label: target_modules ['to_q', 'x'] matched no layer of the Dr")
    ):
        merge_lora(bases, read_settings(release, LORA), tensors, "label")
