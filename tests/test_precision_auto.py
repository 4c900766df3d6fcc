"""precision="auto" (`semantic_iqa.resolve_precision`) through every entry point.

"auto" is bf16 where the device multiplies bf16 matrices natively and fp32 elsewhere; the
default stays fp32. This CI machine's CPU has no native bf16 (AVX2 only), so the bf16 branch
on the CPU is taken through `$SEMANTIC_IQA_NATIVE_BF16=1`, the documented override of the probe.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import pytest
import torch
from conftest import pair_images

import semantic_iqa
from semantic_iqa import DSSSQA, InvalidOptionError, resolve_precision
from semantic_iqa.api import clear_model_cache, load_metric
from semantic_iqa.cli import main
from semantic_iqa.jobs import weights_fingerprint
from semantic_iqa.precision import NATIVE_BF16_ENV, _cpuinfo_flags, _flags_have_native_bf16
from semantic_iqa.registry import metric_info

PAIR_COUNT = 4


@pytest.fixture
def native_bf16(monkeypatch):
    """Set the override: "1" = this CPU has native bf16, "0" = it has not."""
    return lambda value: monkeypatch.setenv(NATIVE_BF16_ENV, value)


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory, photo) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    for index in range(PAIR_COUNT):
        for folder, image in zip(("R", "D"), pair_images(photo, index), strict=True):
            (root / folder).mkdir(exist_ok=True)
            image.save(root / folder / f"{index}.png")
    return root / "R", root / "D"


def test_auto_resolves_on_the_cpu_by_its_native_bf16_either_way(native_bf16, monkeypatch):
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    probed = resolve_precision("auto", "cpu")
    # torch's probe (AMX, AVX512-BF16) agrees with the CPU's own flags; on this AVX2 CI machine: fp32
    assert probed == ("bf16" if _flags_have_native_bf16(_cpuinfo_flags()) else "fp32")
    native_bf16("1")
    assert resolve_precision("auto", "cpu") == "bf16"
    native_bf16("0")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    for given in ("fp32", "bf16"):  # named precisions pass through, whatever the CPU
        assert resolve_precision(given, "cpu") == given
    native_bf16("yes")
    with pytest.raises(
        InvalidOptionError, match=f"^{NATIVE_BF16_ENV}='yes': set it to 1 .*0 .*unset it .*probe the CPU$"
    ):
        resolve_precision("auto", "cpu")


def test_auto_resolves_on_the_device_it_is_given(native_bf16):
    native_bf16("1")
    with pytest.raises(InvalidOptionError, match="unsupported device 'meta'"):
        resolve_precision("auto", "meta")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="CUDA is not available"):
            resolve_precision("auto", "cuda")


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file() or platform.machine() != "x86_64", reason="x86 Linux only")
def test_the_flags_read_from_proc_cpuinfo_are_this_cpu_s():
    flags = _cpuinfo_flags()
    assert {"fpu", "sse2"} <= flags, "every x86-64 CPU has these"
    assert all(re.fullmatch(r"\w+", flag) for flag in flags), "flag names only, not the line's label or colon"
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):  # torch's own reading of the CPU
        assert "avx2" in flags


def test_the_flags_that_mean_native_bf16():
    assert _flags_have_native_bf16({"avx512_bf16", "avx512f"})
    assert _flags_have_native_bf16({"amx_tile", "amx_bf16"})
    assert not _flags_have_native_bf16({"avx2", "fma", "avx512f", "avx512_vnni"})  # fp32 FMA and int8 only
    assert not _flags_have_native_bf16(set())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_auto_on_a_gpu_is_bf16_from_ampere_on(native_bf16):
    native_bf16("0")  # the CPU override does not reach the GPU
    expected = "bf16" if torch.cuda.get_device_capability(0)[0] >= 8 else "fp32"
    assert resolve_precision("auto", "cuda:0") == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_set_precision_auto_follows_a_cpu_metric_on_a_gpu_machine(tiny_dir, native_bf16):
    native_bf16("0")  # this CPU: no native bf16, whatever the GPU beside it does
    assert DSSSQA.from_pretrained(tiny_dir, device="cpu").set_precision("auto").precision == "fp32"


@pytest.mark.parametrize("bad", ["fp16", "AUTO", "", None, torch.bfloat16])
def test_an_unknown_precision_is_a_typed_error_naming_the_choices(bad):
    with pytest.raises(InvalidOptionError, match="choose one of fp32, bf16, auto"):
        resolve_precision(bad, "cpu")


def test_set_precision_auto_resolves_against_the_metric_s_device(tiny_dir, native_bf16):
    native_bf16("0")
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu", precision="auto")
    dtypes = {t.dtype for encoder in model.frozen_encoders().values() for t in encoder.parameters()}
    assert (model.precision, dtypes) == ("fp32", {torch.float32})
    native_bf16("1")
    model.set_precision("auto")
    dtypes = {t.dtype for encoder in model.frozen_encoders().values() for t in encoder.parameters()}
    assert (model.precision, dtypes) == ("bf16", {torch.bfloat16}), "reports the resolved value, never auto"
    assert model.heads.linear1_weight.dtype == torch.float32
    with pytest.raises(InvalidOptionError, match="choose one of fp32, bf16, auto"):
        model.set_precision("fp8")


def test_score_auto_is_fp32_here_and_bf16_where_native(tiny_dir, photo, native_bf16):
    clear_model_cache()
    refs, dists = zip(*(pair_images(photo, index) for index in range(PAIR_COUNT)), strict=True)
    kwargs = {"metric": "dss_sqa", "weights": tiny_dir, "device": "cpu", "gate": "off"}
    native_bf16("0")
    exact = semantic_iqa.score(list(refs), list(dists), **kwargs)
    assert exact.max() - exact.min() > 0.5, "pairs whose scores differ"
    assert torch.equal(semantic_iqa.score(list(refs), list(dists), precision="auto", **kwargs), exact)
    shared = load_metric("dss_sqa", tiny_dir, "cpu", "auto")
    assert shared is load_metric("dss_sqa", tiny_dir, "cpu", "fp32"), "auto and its resolution: one model"
    native_bf16("1")
    fast = semantic_iqa.score(list(refs), list(dists), precision="auto", **kwargs)
    assert load_metric("dss_sqa", tiny_dir, "cpu", "auto") is load_metric("dss_sqa", tiny_dir, "cpu", "bf16")
    # bf16 moves these scores by 0.001 to 0.021 (measured) while they spread over > 0.5; no change
    # at all would mean bf16 never ran
    difference = (fast - exact).abs().max().item()
    assert 0 < difference < 0.05
    clear_model_cache()


def test_cli_score_json_stays_the_record_and_says_the_resolved_precision(tiny_dir, pair_dirs, native_bf16, capsys):
    ref, dist = (str(folder / "1.png") for folder in pair_dirs)
    argv = ["score", ref, dist, "--weights", str(tiny_dir), "--device", "cpu", "--precision", "auto", "--json"]
    for override, expected in (("0", "fp32"), ("1", "bf16")):
        native_bf16(override)
        assert main(argv) == 0
        captured = capsys.readouterr()
        record = json.loads(captured.out)  # stdout: the JSON Lines record, nothing else
        declared = {"score", *(field.name for field in metric_info("dss_sqa").result_fields)}
        assert set(record) == {"metric", "ref", "dist", *declared}
        assert f"--precision auto: {expected} on cpu" in captured.err
    clear_model_cache()


def score_dir(pair_dirs, out: Path, weights: Path, *flags: str) -> list[str]:
    base = ["score-dir", *map(str, pair_dirs), "--out", str(out), "--weights", str(weights), "--device", "cpu"]
    return [*base, "--workers", "0", *flags]


def test_score_dir_records_and_fingerprints_the_resolved_precision(tiny_dir, pair_dirs, tmp_path, native_bf16, capsys):
    native_bf16("0")
    jobs = {}
    for precision in ("auto", "fp32", "bf16"):
        out = tmp_path / f"{precision}.csv"
        assert main(score_dir(pair_dirs, out, tiny_dir, "--precision", precision, "--json", "-")) == 0
        summary = json.loads(capsys.readouterr().out)
        jobs[precision] = json.loads(Path(f"{out}.job.json").read_text())
        assert summary["precision"] == jobs[precision]["precision"] == ("bf16" if precision == "bf16" else "fp32")
    assert jobs["auto"]["fingerprint"] == jobs["fp32"]["fingerprint"] != jobs["bf16"]["fingerprint"]
    assert jobs["auto"]["fingerprint"] == weights_fingerprint(tiny_dir, precision="fp32")
    with pytest.raises(InvalidOptionError, match="resolved precision"):
        weights_fingerprint(tiny_dir, precision="auto")
    # A job started with auto (fp32 here) resumes as fp32; bf16 is another model's results.
    started = tmp_path / "auto.csv"
    assert main(score_dir(pair_dirs, started, tiny_dir, "--precision", "fp32", "--resume")) == 0
    assert f"{PAIR_COUNT} pair(s) done already" in capsys.readouterr().err
    assert main(score_dir(pair_dirs, started, tiny_dir, "--precision", "bf16", "--resume")) == 2
    assert "refusing to resume" in capsys.readouterr().err
    clear_model_cache()


def test_ray_refuses_auto_before_any_work(tiny_dir, pair_dirs, tmp_path, capsys):
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data]")
    from semantic_iqa.ray import PairScorer, run_ray_job

    with pytest.raises(InvalidOptionError, match="name fp32 or bf16"):
        run_ray_job(metric_info("dss_sqa"), tiny_dir, {}, [{"ref": "a", "dist": "b"}], tmp_path / "r.parquet",
                    precision="auto")  # fmt: skip
    with pytest.raises(InvalidOptionError, match="auto resolves per machine"):
        PairScorer("dss_sqa", str(tiny_dir), precision="auto")
    out = tmp_path / "r.csv"
    assert main(score_dir(pair_dirs, out, tiny_dir, "--engine", "ray", "--precision", "auto")) == 2
    assert "name fp32 or bf16" in capsys.readouterr().err and not out.exists()
