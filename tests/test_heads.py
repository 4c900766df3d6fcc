"""Stacked fold heads equal F separate reference heads, in eval and in training mode."""

from __future__ import annotations

import pytest
import torch
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
