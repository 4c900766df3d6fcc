"""ReferenceCache: identical scores, keyed by content, a changed reference misses, bounded."""

from __future__ import annotations

import pytest
import torch

from semantic_iqa.errors import InvalidOptionError
from semantic_iqa.inputs import load_padded_batch
from semantic_iqa.reference_cache import ReferenceCache


@pytest.fixture
def padded():
    generator = torch.Generator().manual_seed(0)
    ref = load_padded_batch(torch.rand(3, 3, 30, 40, generator=generator), 224)
    dist = load_padded_batch(torch.rand(3, 3, 30, 40, generator=generator), 224)
    return ref, dist


def test_cached_and_uncached_scores_are_identical(tiny_model, padded):
    ref, dist = padded
    cache = ReferenceCache(tiny_model)
    with torch.no_grad():
        plain = tiny_model.score_padded(ref, dist)
        first = tiny_model.score_padded(ref, dist, reference_cache=cache)
        again = tiny_model.score_padded(ref.clone(), dist, reference_cache=cache)  # another tensor, same content
    for output in (first, again):
        torch.testing.assert_close(output.score, plain.score, rtol=0, atol=1e-5)
        torch.testing.assert_close(output.fold_scores, plain.fold_scores, rtol=0, atol=1e-5)
    assert (cache.misses, cache.hits, len(cache)) == (3, 3, 3)


def test_a_changed_reference_misses(tiny_model, padded):
    ref, dist = padded
    cache = ReferenceCache(tiny_model)
    with torch.no_grad():
        tiny_model.score_padded(ref, dist, reference_cache=cache)
        changed = ref.clone()
        changed[1, :, 100, 100] += 0.01  # one pixel of one reference
        output = tiny_model.score_padded(changed, dist, reference_cache=cache)
        torch.testing.assert_close(output.score, tiny_model.score_padded(changed, dist).score, rtol=0, atol=1e-5)
    assert (cache.misses, cache.hits) == (4, 2)


def test_duplicates_in_a_batch_are_encoded_once_and_the_cache_is_bounded(tiny_model, padded):
    ref, _ = padded
    cache = ReferenceCache(tiny_model, max_items=2)
    with torch.no_grad():
        cache.features(torch.stack([ref[0], ref[0], ref[1]]))
        assert (cache.misses, cache.hits, len(cache)) == (2, 1, 2)
        cache.features(ref[2:3])  # evicts the least recently used entry
        assert len(cache) == 2
        cache.features(ref[0:1])
    assert cache.misses == 4, "ref[0] was evicted, so it is computed again"
    with pytest.raises(InvalidOptionError):
        ReferenceCache(tiny_model, max_items=0)
