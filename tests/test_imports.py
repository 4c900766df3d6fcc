"""What `import semantic_iqa` and `semantic-iqa --help` import, and pyiqa registration in either import order.

`import semantic_iqa` and building the command's parser must not import torch, timm,
transformers or pyiqa: they are what make an import take seconds. These tests check which
modules are loaded (in a fresh interpreter each), never how long anything takes; the times
are measured by `benchmarks/import_time.py`.
"""

from __future__ import annotations

import argparse
import json
import os

import pytest
from conftest import run_python

import semantic_iqa
from semantic_iqa.cli import build_parser

HEAVY = ("torch", "timm", "transformers", "pyiqa")

# Prints, as JSON, which of HEAVY a fresh interpreter has loaded after the code before it.
LOADED = f"\nimport json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


def loaded_after(code: str) -> list[str]:
    result = run_python(code + LOADED, dict(os.environ))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_import_semantic_iqa_imports_no_heavy_library():
    assert loaded_after("import semantic_iqa") == []


def test_help_of_the_command_and_of_every_subcommand_imports_no_heavy_library():
    commands = subcommands()
    assert {"score", "score-dir", "metrics", "download", "info", "make-tiny", "train"} <= set(commands)
    assert {"convert-siqav3", "convert-mst-clipiqa"} <= set(commands)
    code = (
        "import contextlib, io\n"
        "from semantic_iqa.cli import main\n"
        f"for argv in [['--help'], *([c, '--help'] for c in {commands!r})]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as stop:\n"
        "            assert stop.code == 0, (argv, stop.code)\n"
        "        else:\n"
        "            raise AssertionError(f'{argv}: no exit')\n"
        "    assert 'usage: semantic-iqa' in out.getvalue(), argv"
    )
    assert loaded_after(code) == []


def test_the_metrics_command_imports_no_heavy_library():
    code = "from semantic_iqa.cli import main\nassert main(['metrics']) == 0"
    assert loaded_after(code) == []


def test_every_public_name_resolves_and_is_listed():
    for name in semantic_iqa.__all__:
        assert getattr(semantic_iqa, name) is not None, name
    assert set(semantic_iqa.__all__) <= set(dir(semantic_iqa))
    from semantic_iqa import DSSSQA, ReferenceCache, score  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        semantic_iqa.not_a_name  # noqa: B018


@pytest.mark.parametrize("package", ["semantic_iqa.metrics.dss_sqa", "semantic_iqa.metrics.mst_clipiqa"])
def test_metric_packages_resolve_their_names_lazily(package):
    code = (
        f"import importlib; p = importlib.import_module({package!r}); "
        f"importlib.import_module({package + '.commands'!r}); "
        "assert set(p.__all__) <= set(dir(p))"
    )
    assert loaded_after(code) == [], "the package and its commands module load without the model"
    module = __import__(package, fromlist=["__all__"])
    for name in module.__all__:
        assert getattr(module, name) is not None, name


# pyiqa: both import orders, each in a fresh interpreter, scoring a pair through pyiqa.
PYIQA_SCORE = """
import json, sys, torch
assert not {{'timm', 'transformers'}} & set(sys.modules), "registration imports no backbone library"
assert not any(type(f).__name__ == '_PyiqaImportHook' for f in sys.meta_path), "the hook is gone"
assert type(pyiqa.__loader__).__name__ != '_RegisteringLoader', "pyiqa keeps its own loader"
names = [m for m in pyiqa.list_models() if m in ('dss_sqa', 'dss_sqa_soft', 'mst_clipiqa', 'mst_clipiqa_prompt')]
torch.manual_seed(0)
ref = torch.rand(2, 3, 40, 56)
dist = (ref * torch.tensor([0.9, 0.2]).view(2, 1, 1, 1) + 0.05).clamp(0, 1)
metric = pyiqa.create_metric('dss_sqa', weights=r'{weights}', device='cpu')
theirs = metric(dist, ref)  # pyiqa's order: distorted first
ours = semantic_iqa.score(ref, dist, weights=r'{weights}', device='cpu')
print(json.dumps({{'names': sorted(names), 'theirs': theirs.tolist(), 'ours': ours.tolist()}}))
"""


@pytest.mark.parametrize("first", ["semantic_iqa", "pyiqa"])
def test_pyiqa_registration_in_either_import_order(first, tiny_dir):
    pytest.importorskip("pyiqa")
    second = "pyiqa" if first == "semantic_iqa" else "semantic_iqa"
    code = f"import {first}\nimport {second}\n" + PYIQA_SCORE.format(weights=tiny_dir)
    result = run_python(code, {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["names"] == ["dss_sqa", "dss_sqa_soft", "mst_clipiqa"]
    assert out["theirs"] == pytest.approx(out["ours"], abs=1e-5)
    assert abs(out["theirs"][0] - out["theirs"][1]) > 0.05, "two different pairs, two different scores"


def test_failed_registration_warns_and_leaves_pyiqa_importable():
    pytest.importorskip("pyiqa")
    code = (
        "import warnings, semantic_iqa, semantic_iqa.integrations.pyiqa as ours\n"
        "def broken():\n"
        "    raise RuntimeError('boom')\n"
        "ours.register = broken\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import pyiqa\n"
        "assert 'lpips' in pyiqa.list_models() and 'dss_sqa' not in pyiqa.list_models()\n"
        "assert any('could not register with pyiqa: boom' in str(w.message) for w in caught), caught"
    )
    result = run_python(code, dict(os.environ))
    assert result.returncode == 0, result.stderr


def test_blocked_pyiqa_installs_no_hook():
    code = (
        "import sys; sys.modules['pyiqa'] = None\n"
        "import semantic_iqa\n"
        "assert not any(type(f).__name__ == '_PyiqaImportHook' for f in sys.meta_path)"
    )
    result = run_python(code, dict(os.environ))
    assert result.returncode == 0, result.stderr


def test_pyiqa_alone_finds_the_archs_through_the_entry_point_but_not_the_metric_names():
    """What pyiqa (0.1.16) does without `import semantic_iqa` and without our start-up hook
    (switched off here; tests/test_packaging.py runs it); docs/pyiqa.md says so.

    `ARCH_REGISTRY.get` loads the `pyiqa.archs` entry points (ours registers everything), but
    `create_metric` checks `DEFAULT_CONFIGS` first and never reaches the registry.
    """
    pyiqa = pytest.importorskip("pyiqa")
    version = tuple(int(part) for part in pyiqa.__version__.split(".")[:3] if part.isdigit())
    if version > (0, 1, 16):
        pytest.skip(f"pyiqa {pyiqa.__version__}: docs/pyiqa.md describes 0.1.16; check whether it still applies")
    code = (
        "import sys, pyiqa\n"
        "try:\n"
        "    pyiqa.create_metric('dss_sqa', device='cpu')\n"
        "except AssertionError as exc:\n"
        "    print('REFUSED', exc)\n"
        "assert 'semantic_iqa' not in sys.modules\n"
        "from pyiqa.utils.registry import ARCH_REGISTRY\n"
        "assert ARCH_REGISTRY.get('SemanticIQAFullReference').__name__ == 'SemanticIQAFullReference'\n"
        "assert 'dss_sqa' in pyiqa.list_models()\n"
        "print('AFTER ENTRY POINT OK')"
    )
    result = run_python(code, {**os.environ, "SEMANTIC_IQA_PYIQA_AUTOLOAD": "0"})
    assert result.returncode == 0, result.stderr
    assert "REFUSED Metric dss_sqa not implemented yet." in result.stdout, result.stdout
    assert "AFTER ENTRY POINT OK" in result.stdout
