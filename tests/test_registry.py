"""The registry and the shared weights I/O, for a metric from outside this package.

The third metric is the out-of-tree toy plug-in (tests/plugin_toy, installed by pip into a
temporary folder: tests/plugin_toy/testing.py): `toy_brightness`, a no-reference score with
one trained scalar pair and no backbone. It reaches the weights folder with its sha256 checks,
`create_metric` and the scoring loop through its entry point alone. Every other layer:
tests/test_plugins.py and tests/test_plugins_adapters.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

import semantic_iqa
from semantic_iqa import create_metric, list_metrics, register_metric
from semantic_iqa.errors import InvalidOptionError, NoPublishedWeightsError, WeightsIntegrityError
from semantic_iqa.registry import metric_info, unregister_metric

pytest_plugins = ["plugin_toy.testing"]  # fixtures: toy_site, toys


def grey(level: int) -> Image.Image:
    return Image.new("RGB", (40, 24), (level, level, level))


def trained_brightness(bias: float = 0.75) -> torch.nn.Module:
    cls = metric_info("toy_brightness").metric_class()
    model = cls(cls.config_class())
    with torch.no_grad():
        model.bias.fill_(bias)
    return model


def test_a_plugin_metric_goes_through_the_shared_weights_io_and_scoring_loop(toys, tmp_path):
    names = [m.name for m in list_metrics()]
    assert names.index("toy_brightness") > max(names.index("mst_clipiqa"), names.index("dss_sqa")), "built-ins first"
    folder = trained_brightness().save_pretrained(tmp_path / "toy")

    config = json.loads((folder / "config.json").read_text())
    assert (config["format"], config["metric"], config["image_size"]) == ("semantic-iqa", "toy_brightness", 32)
    assert [e["file"] for e in config["head_files"]] == ["heads/head.safetensors"]
    assert "library_name: semantic-iqa" in (folder / "README.md").read_text()

    metric = create_metric("toy_brightness", weights=folder, device="cpu")
    assert type(metric).__name__ == "Brightness" and metric.info.kind == "NR" and metric.info.higher_is_better
    assert metric.bias.item() == 0.75  # the trained tensors came back
    # Through the shared loop: paths, PIL images, batches of 3 over 5 images, in order.
    for level in (0, 60, 120):
        grey(level).save(tmp_path / f"{level}.png")
    images = [tmp_path / "0.png", grey(250), tmp_path / "60.png", tmp_path / "120.png", grey(200)]
    output = metric.predict(images, batch_size=3)
    # load_padded scales 40x24 to 32x19 and pads it to 32x32 with black: 19/32 of the pixels hold the level.
    levels = torch.tensor([0, 250, 60, 120, 200]) / 255 * 19 / 32
    torch.testing.assert_close(output.score, torch.sigmoid(8.0 * (levels - 0.5) + 0.75), atol=1e-5, rtol=0)
    assert output.dark.tolist() == [True, False, True, False, False]  # mean level below 0.25


def test_the_shared_weights_checks_apply_to_the_plugin(toys, tmp_path):
    folder = trained_brightness().save_pretrained(tmp_path / "toy")
    path = folder / "heads" / "head.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit pattern of one tensor changed
    with pytest.raises(WeightsIntegrityError, match="head.safetensors"):
        create_metric("toy_brightness", weights=folder, device="cpu")
    with pytest.raises(NoPublishedWeightsError, match="no published Toy brightness weights.*make-tiny"):
        create_metric("toy_brightness", device="cpu")


def test_a_folder_of_another_metric_is_refused(toys, tiny_dir):
    with pytest.raises(semantic_iqa.WeightsFormatError, match="holds 'dss_sqa' weights, not 'toy_brightness'"):
        create_metric("toy_brightness", weights=tiny_dir, device="cpu")


def test_a_metric_registered_at_run_time(toys, tmp_path):
    """`register_metric` (a notebook, a test): an entry over an installed metric's class."""
    folder = trained_brightness(bias=-1.0).save_pretrained(tmp_path / "toy")
    entry = register_metric(replace(metric_info("toy_brightness"), name="toy_again", title="Toy again"))
    try:
        assert list_metrics()[-1] is entry
        score = create_metric("toy_again", weights=folder, device="cpu").predict(grey(128)).score
        torch.testing.assert_close(score, torch.sigmoid(8.0 * (torch.tensor([128 / 255 * 19 / 32]) - 0.5) - 1.0))
        with pytest.raises(InvalidOptionError, match="already registered"):
            register_metric(entry)
    finally:
        unregister_metric("toy_again")
    assert "toy_again" not in [m.name for m in list_metrics()]


def test_registry_entries_and_errors():
    entry = {m.name: m for m in list_metrics()}["dss_sqa"]
    assert (entry.kind, entry.higher_is_better, entry.score_range) == ("FR", True, (0.0, 5.0))
    with pytest.raises(InvalidOptionError, match="unknown metric 'nope'; choose one of .*dss_sqa"):
        create_metric("nope")
    with pytest.raises(InvalidOptionError, match="already registered"):
        register_metric(entry)


def test_create_metric_gives_the_dss_sqa_model(tiny_dir, tiny_model, photo):
    metric = create_metric("dss_sqa", weights=tiny_dir, device="cpu")
    assert isinstance(metric, semantic_iqa.DSSSQA)
    dist = photo.rotate(90)
    assert metric.predict(photo, dist).score.item() == pytest.approx(
        tiny_model.predict(photo, dist).score.item(), abs=1e-6
    )


def test_the_default_metric_is_the_marked_built_in_whatever_the_names_sort_to(toys):
    # setuptools writes entry points in name order: "dreamsim" sorts before "dss_sqa", and a
    # default taken from that order silently changed what `semantic-iqa score a b` scored.
    names = [m.name for m in list_metrics()]
    assert names.index("dreamsim") < names.index("dss_sqa")
    assert semantic_iqa.default_metric() == "dss_sqa"
    # A metric registered from outside cannot make itself the default.
    register_metric(replace(metric_info("toy_brightness"), name="toy_default", package_default=True))
    try:
        assert semantic_iqa.default_metric() == "dss_sqa"
    finally:
        unregister_metric("toy_default")
