"""`compile=` / `--compile`: `torch.compile` (inductor) of the frozen encoders, in place.

The compiled test compiles one tiny timm ViT (single-branch DreamSim's) on the CPU: 39 s on 2
cores shared with other work (load 4), with an empty inductor cache, most of it g++ building
the kernels (DSS-SQA's two tiny encoders took 75 s, MST-CLIPIQA's 50-68 s). The other tests never
call a compiled model: seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from semantic_iqa import InvalidOptionError, create_metric
from semantic_iqa.api import clear_model_cache, load_metric
from semantic_iqa.cli import main
from semantic_iqa.cli.job_outputs import resume_command
from semantic_iqa.cli.parser import build_parser
from semantic_iqa.integrations.loss import QualityLoss
from semantic_iqa.metrics.dreamsim.tiny import build_random_dreamsim
from semantic_iqa.precision import check_compile


def compiler_found() -> bool:
    try:
        check_compile(None, torch.device("cpu"))
    except InvalidOptionError:
        return False
    return True


def no_compiler(tmp_path: Path):
    """A block where inductor's compiler search finds none (its own setting, `cpp.cxx`, patched torch's way)."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++"))})


@pytest.fixture(scope="module")
def dreamsim_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dreamsim") / "tiny-dino"
    return build_random_dreamsim("dino_vitb16", "tiny", seed=0).save_pretrained(folder)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_compile_encoders_is_in_place_and_refuses_bad_setups(tiny_dir, tmp_path):
    from semantic_iqa import DSSSQA

    model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    encoders, before = model.frozen_encoders(), snapshot(model)
    with pytest.raises(InvalidOptionError, match="unknown torch.compile mode 'fastest'; choose one of None, default"):
        model.compile_encoders(mode="fastest")
    with no_compiler(tmp_path), pytest.raises(InvalidOptionError, match="needs a C.. compiler on the CPU"):
        model.compile_encoders()
    if compiler_found():
        assert model.compile_encoders() is model
    after = model.state_dict()
    assert list(after) == list(before), "same state_dict keys: a compiled model saves and loads as before"
    assert all(torch.equal(after[name], tensor) for name, tensor in before.items())
    assert all(model.frozen_encoders()[role] is encoder for role, encoder in encoders.items())


def test_check_compile_names_the_modes_and_the_remedy_and_checks_the_cpu_only(tmp_path):
    modes = "None, default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs"
    with pytest.raises(InvalidOptionError, match=f"^unknown torch.compile mode 'fastest'; choose one of {modes}$"):
        check_compile("fastest", torch.device("cpu"))
    remedy = r"install one \(e\.g\. apt install g\+\+\) or score without compile$"
    with no_compiler(tmp_path):
        with pytest.raises(
            InvalidOptionError, match=r"^compile: torch\.compile \(inductor\) needs a C\+\+ .*" + remedy
        ):
            check_compile(None, torch.device("cpu"))
        check_compile("max-autotune", torch.device("cuda"))  # a GPU's kernels are Triton's: no C++ compiler


def test_compile_reaches_the_model_from_the_command_line_and_the_api(tiny_dir, tmp_path, capsys):
    ref, dist = (str(Path(__file__).parents[1] / "examples" / name) for name in ("ref.png", "dist.png"))
    weights = ["--weights", str(tiny_dir), "--device", "cpu"]
    with no_compiler(tmp_path):
        assert main(["score", ref, dist, *weights, "--compile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a C++ compiler" in err[0]
    folders = tmp_path / "R", tmp_path / "D"
    for folder, image in zip(folders, (ref, dist), strict=True):
        folder.mkdir()
        (folder / "a.png").write_bytes(Path(image).read_bytes())
    out = tmp_path / "out.csv"
    with no_compiler(tmp_path):
        assert main(["score-dir", *map(str, folders), "--out", str(out), *weights, "--compile"]) == 2
    assert "needs a C++ compiler" in capsys.readouterr().err and not out.exists()
    args = build_parser().parse_args(["score-dir", *map(str, folders), "--out", str(out), "--compile"])
    assert resume_command(args).endswith("--compile --resume")
    eager = load_metric("dss_sqa", tiny_dir, "cpu")
    with no_compiler(tmp_path), pytest.raises(InvalidOptionError, match="needs a C.. compiler"):
        load_metric("dss_sqa", tiny_dir, "cpu", compile=True)
    if compiler_found():  # compiled and eager: two models in the cache (nothing is compiled before a call)
        assert load_metric("dss_sqa", tiny_dir, "cpu", compile=True) is not eager
        assert load_metric("dss_sqa", tiny_dir, "cpu", compile=False) is eager
    clear_model_cache()


@pytest.mark.skipif(not compiler_found(), reason="inductor needs a C++ compiler on the CPU")
def test_compiled_scores_equal_eager_and_the_metric_stays_frozen_in_a_user_model(dreamsim_dir):
    eager = create_metric("dreamsim", dreamsim_dir, device="cpu")
    compiled = create_metric("dreamsim", dreamsim_dir, device="cpu", compile=True)
    generator = torch.Generator().manual_seed(0)
    refs = torch.rand(4, 3, 64, 80, generator=generator)
    images = (0.6 * refs + 0.4 * torch.rand(4, 3, 64, 80, generator=generator)).clamp(0, 1)
    expected = eager.predict(refs, images).score
    assert expected.max() - expected.min() > 0.01, "pairs whose distances differ (measured 0.009 to 0.029)"
    traced = []  # whether each call of an encoder's model ran inside torch.compile
    for encoder in compiled.frozen_encoders().values():
        encoder.model.register_forward_hook(lambda *_: traced.append(torch.compiler.is_compiling()))
    scores = compiled.predict(refs, images).score  # compiles here (first call)
    assert traced and all(traced), "the encoders ran compiled"
    # measured 1.2e-7 apart (inductor's fused kernels round differently), 1e5 times less than the spread
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    before = snapshot(compiled)

    class Restorer(nn.Module):  # a user's model holding the compiled metric's loss, trained with its own loss
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 3, padding=1))
            self.iqa = QualityLoss("dreamsim", model=compiled)

    user = Restorer().train()
    optimizer = torch.optim.Adam(user.parameters(), lr=0.1)
    assert not {id(p) for p in compiled.parameters()} & {id(p) for p in user.parameters()}
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.l1_loss(torch.sigmoid(user.net(images)), images).backward()
        optimizer.step()
    assert not compiled.training and not any(encoder.training for encoder in compiled.frozen_encoders().values())
    assert all(torch.equal(compiled.state_dict()[name], tensor) for name, tensor in before.items())
    assert torch.equal(compiled.predict(refs, images).score, scores)
