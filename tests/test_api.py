"""`semantic_iqa.score` / `score_details`: return types, caching, argument order, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageFilter

import semantic_iqa
from semantic_iqa.errors import InvalidInputError, InvalidOptionError


@pytest.fixture
def blurred(photo):
    return photo.filter(ImageFilter.GaussianBlur(2))


def test_single_pair_gives_a_float_and_a_batch_gives_a_tensor(tiny_dir, photo, blurred):
    single = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    assert isinstance(single, float) and 0.0 <= single <= 5.0
    batch = semantic_iqa.score([photo, photo], [blurred, photo], weights=tiny_dir, device="cpu", batch_size=1)
    assert isinstance(batch, torch.Tensor) and batch.shape == (2,) and batch.dtype == torch.float32
    assert batch[0].item() == pytest.approx(single, abs=1e-6)


def test_every_input_kind_gives_the_same_score(tiny_dir, photo, blurred, tmp_path):
    photo.save(tmp_path / "ref.png")
    blurred.save(tmp_path / "dist.png")
    expected = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    as_array = np.asarray(photo), np.asarray(blurred)
    for ref, dist in [
        (tmp_path / "ref.png", tmp_path / "dist.png"),
        as_array,
        tuple(torch.from_numpy(a.copy()).permute(2, 0, 1) for a in as_array),
    ]:
        assert semantic_iqa.score(ref, dist, weights=tiny_dir, device="cpu") == pytest.approx(expected, abs=1e-6)


def test_model_is_loaded_once_per_weights_and_device(tiny_dir):
    semantic_iqa.clear_model_cache()
    first = semantic_iqa.load_model(tiny_dir, "cpu")
    assert semantic_iqa.load_model(str(tiny_dir), "cpu") is first
    semantic_iqa.clear_model_cache()
    assert semantic_iqa.load_model(tiny_dir, "cpu") is not first


def test_the_metric_is_asymmetric(tiny_dir, photo, blurred):
    forward = semantic_iqa.score(photo, blurred, weights=tiny_dir, device="cpu")
    swapped = semantic_iqa.score(blurred, photo, weights=tiny_dir, device="cpu")
    # Measured: swapping moves the tiny model's score by 0.18 (2.83 -> 2.65); float rounding
    # alone moves scores by 7e-7 at most. The tolerance sits far from both.
    assert forward != pytest.approx(swapped, abs=0.05)


def test_score_details(tiny_dir, photo, blurred):
    detail = semantic_iqa.score_details(photo, blurred, weights=tiny_dir, device="cpu", gate="off")
    assert isinstance(detail, semantic_iqa.PairScore)
    assert len(detail.fold_scores) == 5
    assert detail.score == pytest.approx(float(np.mean(detail.fold_scores)), abs=1e-5)
    assert detail.fold_std == pytest.approx(float(np.std(detail.fold_scores, ddof=1)), abs=1e-5)
    assert -1.0 <= detail.cos_sim <= 1.0 + 1e-6 and detail.gated is False
    many = semantic_iqa.score_details([photo], [blurred], weights=tiny_dir, device="cpu", gate="off")
    assert many == [detail]


def test_api_errors(tiny_dir, photo):
    with pytest.raises(InvalidOptionError, match="unknown gate mode"):
        semantic_iqa.score(photo, photo, weights=tiny_dir, device="cpu", gate="maybe")
    with pytest.raises(InvalidOptionError, match="unknown device 'gpu0'"):
        semantic_iqa.score(photo, photo, weights=tiny_dir, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="CUDA is not available"):
            semantic_iqa.score(photo, photo, weights=tiny_dir, device="cuda")
    with pytest.raises(InvalidInputError, match="2 reference image"):
        semantic_iqa.score([photo, photo], [photo], weights=tiny_dir, device="cpu")
    with pytest.raises(InvalidInputError, match="empty"):
        semantic_iqa.score([], [], weights=tiny_dir, device="cpu")


# -- one generic entry for every registered metric --


TOYS = ("toy_offset", "toy_level")


@pytest.fixture
def toys(tmp_path_factory):
    """The test metrics of tests/option_toy.py registered, with a weights folder each."""
    from option_toy import registered

    from semantic_iqa.registry import metric_info

    root = tmp_path_factory.mktemp("toys")
    with registered():
        yield {
            name: metric_info(name).build_tiny().save_pretrained(root / name) for name in ("toy_offset", "toy_level")
        }
    semantic_iqa.clear_model_cache()


def grey(level: int, left: int | None = None):
    """A 16x16 grey image; its left half at `left` if given."""
    from PIL import Image

    image = Image.new("RGB", (16, 16), (level,) * 3)
    if left is not None:
        image.paste((left,) * 3, (0, 0, 8, 16))
    return image


def test_score_takes_any_metric_and_its_declared_options(toys):
    ref, dist = grey(100), grey(100, left=20)
    gap = 80 / 255 / 2
    kwargs = {"metric": "toy_offset", "weights": toys["toy_offset"], "device": "cpu"}
    assert semantic_iqa.score(ref, dist, **kwargs) == pytest.approx(2 * gap, abs=1e-5)
    assert semantic_iqa.score(ref, dist, shift=0.5, **kwargs) == pytest.approx(2 * gap + 0.5, abs=1e-5)
    assert semantic_iqa.score(ref=ref, dist=dist, pooling="max", **kwargs) == pytest.approx(2 * 80 / 255, abs=1e-5)
    batch = semantic_iqa.score([ref, ref], [dist, ref], **kwargs)
    assert batch.tolist() == pytest.approx([2 * gap, 0.0], abs=1e-5)
    images = semantic_iqa.score([grey(100), grey(200)], metric="toy_level", weights=toys["toy_level"], device="cpu")
    assert images.tolist() == pytest.approx([200 / 255, 400 / 255], abs=1e-5)


def test_score_details_gives_every_declared_field(toys):
    import pickle

    from semantic_iqa.errors import MetricContractError

    kwargs = {"metric": "toy_level", "weights": toys["toy_level"], "device": "cpu"}
    dark, light = semantic_iqa.score_details([grey(20), grey(200)], **kwargs)
    assert isinstance(dark, semantic_iqa.ItemScore) and semantic_iqa.PairScore is semantic_iqa.ItemScore
    assert (dark.metric, dark.dark, light.dark) == ("toy_level", True, False)
    assert dark.as_dict() == {"score": pytest.approx(40 / 255, abs=1e-6), "dark": True}
    assert pickle.loads(pickle.dumps(dark)) == dark and dark != light and len({dark, light, dark}) == 2
    with pytest.raises(AttributeError, match="frozen"):
        dark.score = 5.0
    with pytest.raises(AttributeError, match="no field 'gap'"):
        dark.gap  # noqa: B018
    with pytest.raises(MetricContractError, match="toy_liar: its records lack the declared field 'extra'"):
        semantic_iqa.score_details(grey(1), grey(2), metric="toy_liar", weights=toys["toy_offset"], device="cpu")


@pytest.mark.parametrize(
    "metric,options,error,message",
    [
        ("toy_offset", {"bogus": 1}, "UnknownOptionError", "toy_offset has no option 'bogus'"),
        ("toy_offset", {"gate": "soft"}, "UnknownOptionError", "gate is an option of dss_sqa"),
        ("dss_sqa", {"shift": 1.0}, "UnknownOptionError", "dss_sqa has no option 'shift'"),
        ("toy_offset", {"shift": "much"}, "InvalidOptionError", "option shift must be float, got str 'much'"),
        (
            "toy_offset",
            {"pooling": "median"},
            "InvalidOptionError",
            "unknown pooling 'median'; choose one of mean",
        ),
        ("toy_level", {"prompt": "a cat"}, "InvalidInputError", "toy_level takes no prompt"),
        ("toy_offset", {"ref": "a.png"}, "InvalidInputError", "give all of them in order, or all by name"),
    ],
)
def test_bad_options_are_typed_errors_before_any_model_loads(toys, tmp_path, metric, options, error, message):
    from semantic_iqa import errors

    images = () if "ref" in options else (grey(1),) if metric == "toy_level" else (grey(1), grey(2))
    with pytest.raises(getattr(errors, error), match=message):  # no weights there: checked before loading
        semantic_iqa.score(*images, metric=metric, weights=tmp_path / "missing", device="cpu", **options)


def test_load_model_is_the_default_metric_and_every_public_class_is_exported(tiny_dir):
    from semantic_iqa.registry import default_metric

    assert semantic_iqa.load_model(tiny_dir, "cpu").info.name == default_metric() == semantic_iqa.default_metric()
    names = {"MSTCLIPIQA", "MSTCLIPIQAConfig", "MSTCLIPIQAOutput", "MetricOutput", "MetricOption", "ResultField"}
    names |= {"ItemScore", "HubWeights", "metric_info", "default_metric", "UnknownOptionError", "PluginWarning"}
    assert names <= set(semantic_iqa.__all__)
    assert semantic_iqa.MSTCLIPIQA.__name__ == "MSTCLIPIQA" and semantic_iqa.metric_info("mst_clipiqa").kind == "NR"
