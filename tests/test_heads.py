"""Stacked fold heads equal F separate reference heads, in eval and in training mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semantic_iqa.metrics.dss_sqa.config import HeadConfig
from semantic_iqa.metrics.dss_sqa.heads import FOLD_TENSORS, FoldHeads, expected_score


def reference_head(heads: FoldHeads, fold: int) -> nn.Sequential:
    """The reference layer stack for one fold, filled from the stacked module."""
    h1, d = heads.linear1_weight.shape[1:]
    h2, classes = heads.linear2_weight.shape[1], heads.linear3_weight.shape[1]
    head = nn.Sequential(
        nn.Linear(d, h1),
        nn.BatchNorm1d(h1),
        nn.SiLU(),
        nn.Dropout(0.5),
        nn.Linear(h1, h2),
        nn.SiLU(),
        nn.Dropout(0.2),
        nn.Linear(h2, classes),
    )
    sd = heads.fold_state_dict(fold)
    head.load_state_dict(
        {
            "0.weight": sd["linear1.weight"],
            "0.bias": sd["linear1.bias"],
            "1.weight": sd["norm.weight"],
            "1.bias": sd["norm.bias"],
            "1.running_mean": sd["norm.running_mean"],
            "1.running_var": sd["norm.running_var"],
            "1.num_batches_tracked": sd["norm.num_batches_tracked"],
            "4.weight": sd["linear2.weight"],
            "4.bias": sd["linear2.bias"],
            "7.weight": sd["linear3.weight"],
            "7.bias": sd["linear3.bias"],
        }
    )
    return head


@pytest.fixture
def heads() -> FoldHeads:
    torch.manual_seed(0)
    heads = FoldHeads(3, 20, config=HeadConfig(hidden_dims=(16, 8)))
    with torch.no_grad():
        heads.norm_running_mean.normal_()
        heads.norm_running_var.uniform_(0.5, 2)
    return heads


def test_eval_mode_equals_separate_heads(heads):
    x = torch.randn(7, 20)
    out = heads.eval()(x)
    assert out.shape == (7, 3, 6)
    for fold in range(3):
        torch.testing.assert_close(out[:, fold], reference_head(heads, fold).eval()(x))


def test_training_mode_batch_statistics_and_running_updates_equal_separate_heads(heads):
    x = torch.randn(9, 20)
    references = [reference_head(heads, fold).train() for fold in range(3)]
    for ref in references:  # dropout off in both so outputs are comparable
        ref[3].p = ref[6].p = 0.0
    heads.config = HeadConfig(hidden_dims=(16, 8), dropout=(0.0, 0.0))
    out = heads.train()(x)
    for fold, ref in enumerate(references):
        torch.testing.assert_close(out[:, fold], ref(x))
        torch.testing.assert_close(heads.norm_running_mean[fold], ref[1].running_mean)
        torch.testing.assert_close(heads.norm_running_var[fold], ref[1].running_var)
        assert heads.norm_num_batches_tracked[fold] == ref[1].num_batches_tracked


def test_fold_state_dict_round_trip(heads):
    other = FoldHeads(3, 20, config=heads.config)
    for fold in range(3):
        other.load_fold_state_dict(fold, heads.fold_state_dict(fold))
    for attr in FOLD_TENSORS.values():
        assert torch.equal(getattr(other, attr), getattr(heads, attr))
    with pytest.raises(KeyError, match="missing"):
        other.load_fold_state_dict(0, {})


def test_expected_score_is_the_mean_class():
    logits = torch.log(torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]) + 1e-30)
    torch.testing.assert_close(expected_score(logits), torch.tensor([2.5, 2.0]))


def reference_stack(in_dim: int, hidden: tuple[int, int], classes: int = 6) -> nn.Sequential:
    """A fresh reference head, built the way the published recipe builds it."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden[0]),
        nn.BatchNorm1d(hidden[0]),
        nn.SiLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden[0], hidden[1]),
        nn.SiLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden[1], classes),
    )


def test_a_new_fold_is_initialised_exactly_as_a_fresh_reference_head():
    # Same seed, same draws: the weight bound (kaiming, a = sqrt(5)), the bias bound
    # (1 / sqrt(fan_in)), the draw order and the BatchNorm start all have to match nn.Linear's.
    torch.manual_seed(11)
    heads = FoldHeads(1, 20, config=HeadConfig(hidden_dims=(16, 8)))
    torch.manual_seed(11)
    reference = reference_stack(20, (16, 8)).state_dict()
    names = {"0": "linear1", "1": "norm", "4": "linear2", "7": "linear3"}
    ours = heads.fold_state_dict(0)
    for key, value in reference.items():
        layer, tensor = key.split(".")
        torch.testing.assert_close(ours[f"{names[layer]}.{tensor}"], value, rtol=0, atol=0)


def test_reset_parameters_also_resets_the_running_statistics(heads):
    heads.train()(torch.randn(5, 20) * 3 + 1)
    assert heads.norm_num_batches_tracked.tolist() == [1, 1, 1]
    heads.reset_parameters()
    assert torch.equal(heads.norm_running_mean, torch.zeros(3, 16))
    assert torch.equal(heads.norm_running_var, torch.ones(3, 16))
    assert heads.norm_num_batches_tracked.tolist() == [0, 0, 0]
    assert torch.equal(heads.norm_weight, torch.ones(3, 16)) and torch.equal(heads.norm_bias, torch.zeros(3, 16))


def test_each_dropout_acts_after_its_own_layer_and_only_in_training(heads):
    x = torch.randn(4, 20)
    silu_bias2 = F.silu(heads.linear2_bias)  # [F, H2]: what the third layer sees when layer 1 is dropped
    after_first = torch.einsum("fh,fch->fc", silu_bias2, heads.linear3_weight) + heads.linear3_bias
    heads.config = HeadConfig(hidden_dims=(16, 8), dropout=(1.0, 0.0))
    out = heads.train()(x)
    torch.testing.assert_close(out, after_first.unsqueeze(0).expand(4, -1, -1))
    heads.config = HeadConfig(hidden_dims=(16, 8), dropout=(0.0, 1.0))
    torch.testing.assert_close(heads.train()(x), heads.linear3_bias.detach().unsqueeze(0).expand(4, -1, -1))
    heads.config = HeadConfig(hidden_dims=(16, 8), dropout=(1.0, 1.0))
    evaluated = heads.eval()(x)
    for fold in range(3):
        torch.testing.assert_close(evaluated[:, fold], reference_head(heads, fold).eval()(x))


def test_batch_norm_uses_the_configured_momentum_and_eps(heads):
    heads.config = HeadConfig(hidden_dims=(16, 8), dropout=(0.0, 0.0), norm_eps=0.5, norm_momentum=0.7)
    x = torch.randn(6, 20)
    references = [reference_head(heads, fold) for fold in range(3)]
    for ref in references:
        ref[1].eps, ref[1].momentum = 0.5, 0.7
        ref[3].p = ref[6].p = 0.0
    out = heads.train()(x)
    for fold, ref in enumerate(references):
        torch.testing.assert_close(out[:, fold], ref.train()(x))
        torch.testing.assert_close(heads.norm_running_var[fold], ref[1].running_var)
    evaluated = heads.eval()(x)
    for fold, ref in enumerate(references):
        torch.testing.assert_close(evaluated[:, fold], ref.eval()(x))


def test_fold_tensors_are_copies_and_bad_ones_are_named(heads):
    tensors = heads.fold_state_dict(1)
    tensors["linear1.weight"].zero_()
    assert heads.linear1_weight[1].abs().sum() > 0, "fold_state_dict must not share storage"
    with pytest.raises(KeyError, match=r"fold 2: missing tensors \[\], unexpected tensors \['extra'\]"):
        heads.load_fold_state_dict(2, {**heads.fold_state_dict(0), "extra": torch.zeros(1)})
    wrong = {**heads.fold_state_dict(0), "linear2.bias": torch.zeros(9)}
    with pytest.raises(ValueError, match=r"fold 1: tensor linear2.bias has shape \(9,\), expected \(8,\)"):
        heads.load_fold_state_dict(1, wrong)
    other = FoldHeads(3, 20, config=heads.config)
    other.load_fold_state_dict(2, heads.fold_state_dict(0))  # only fold 2 is written
    assert torch.equal(other.linear3_weight[2], heads.linear3_weight[0])
    assert not torch.equal(other.linear3_weight[0], heads.linear3_weight[0])


def test_the_module_describes_itself(heads):
    assert "folds=3, in_dim=20, hidden_dims=(16, 8), classes=6" in repr(heads)


def test_expected_score_stays_on_the_device_of_the_logits():
    # "meta" stands in for a GPU: class values made on the default device (CPU) would not mix with it.
    assert expected_score(torch.empty(2, 3, 6, device="meta")).device.type == "meta"
