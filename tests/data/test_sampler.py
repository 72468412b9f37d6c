"""``MixedSampler``: data sets mixed in their weights' proportions, per (seed, epoch), split over DDP ranks."""

import pytest

from slimpose.data.sampler import MixedSampler, source_counts


def _source(i: int, sizes: list[int]) -> int:
    edges = [sum(sizes[:k + 1]) for k in range(len(sizes))]
    return next(k for k, e in enumerate(edges) if i < e)


def test_proportions_within_one_percent_over_an_epoch():
    sizes, weights = [500, 120, 3000], [1.0, 2.0, 1.0]
    s = MixedSampler(sizes, weights, seed=3)
    got = [0, 0, 0]
    for i in s:
        got[_source(i, sizes)] += 1
    total = sum(got)
    assert total == sum(sizes) == len(s)
    for g, w in zip(got, weights):
        assert abs(g / total - w / sum(weights)) < 0.01
    assert source_counts(10, [1, 1, 1]) == [4, 3, 3] and sum(source_counts(7, [0.2, 0.5, 0.3])) == 7
    # a small source drawn more often than it is long repeats whole permutations: 1810 draws of 120
    # indices, each 15 or 16 times
    small = [i for i in s.epoch_indices() if 500 <= i < 620]
    assert len(small) == 1810 and {small.count(i) for i in set(small)} == {15, 16}


def test_deterministic_per_seed_and_epoch_and_ranks_split_an_epoch():
    a, b = MixedSampler([50, 30], [1, 3], seed=1), MixedSampler([50, 30], [1, 3], seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)  # a resumed run that sets the epoch gets the same order
    assert list(MixedSampler([50, 30], [1, 3], seed=2)) != list(MixedSampler([50, 30], [1, 3], seed=1))
    ranks = [MixedSampler([50, 30], [1, 3], seed=1, num_replicas=3, rank=r) for r in range(3)]
    parts = [list(r) for r in ranks]
    assert all(len(p) == 80 // 3 for p in parts)
    positions = [list(range(80))[r::3][:26] for r in range(3)]
    every = a.__class__([50, 30], [1, 3], seed=1).epoch_indices()
    assert [[every[i] for i in pos] for pos in positions] == parts  # disjoint slots of one shared epoch
    with pytest.raises(ValueError, match="weights"):
        MixedSampler([5], [0.0])
    with pytest.raises(ValueError, match="rank"):
        MixedSampler([5], [1.0], num_replicas=2, rank=2)
