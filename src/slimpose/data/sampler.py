"""Weighted mixing of several training data sets (UniTransPose's multi-data-set training).

``MixedSampler`` draws, every epoch, ``length`` indices into a ``ConcatDataset`` of ``sizes`` sources so that
source ``s`` gets ``round(length * w_s / sum(w))`` of them (largest remainders make the counts sum to
``length``). Within a source the indices are a fresh permutation, repeated when a source is drawn more often
than it is long (and cut when less). The draws of all sources are shuffled together. Everything comes from
one generator seeded by ``(seed, epoch)``, so an epoch is the same on every run, on ``--resume`` (the loop
calls ``set_epoch``) and on every process. Under DDP each of the ``num_replicas`` ranks takes every
``num_replicas``-th index of the epoch, ``length // num_replicas`` each (the rest is dropped, as
``DistributedSampler(drop_last=True)``), so the ranks never share an index of an epoch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def source_counts(length: int, weights: Sequence[float]) -> list[int]:
    """How many of ``length`` draws each source gets: ``length * w / sum(w)``, rounded by largest remainder."""
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"mixing weights must be >= 0 with a positive sum, got {list(weights)}")
    exact = [length * w / sum(weights) for w in weights]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[: length - sum(counts)]:
        counts[i] += 1
    return counts


class MixedSampler(Sampler[int]):
    """Indices into ``ConcatDataset(sources)`` mixed by ``weights`` (see the module doc)."""

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], length: int | None = None, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if len(sizes) != len(weights) or not sizes or any(int(n) < 1 for n in sizes):
            raise ValueError(f"MixedSampler: one positive size per weight, got sizes {list(sizes)}, "
                             f"weights {list(weights)}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"MixedSampler: rank {rank} not in [0, {num_replicas})")
        self.sizes = [int(n) for n in sizes]
        self.weights = [float(w) for w in weights]
        self.length = int(length if length is not None else sum(self.sizes))
        self.counts = source_counts(self.length, self.weights)
        self.seed, self.num_replicas, self.rank = int(seed), int(num_replicas), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_indices(self) -> list[int]:
        """All ``length`` indices of the current epoch (every rank computes the same list)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        offset, drawn = 0, []
        for size, count in zip(self.sizes, self.counts):
            reps = -(-count // size)
            perms = [torch.randperm(size, generator=g) for _ in range(reps)]
            idx = torch.cat(perms)[:count] if perms else torch.zeros(0, dtype=torch.long)
            drawn.append(idx + offset)
            offset += size
        every = torch.cat(drawn)
        return every[torch.randperm(len(every), generator=g)].tolist()

    def __iter__(self) -> Iterator[int]:
        per_rank = self.length // self.num_replicas
        return iter(self.epoch_indices()[self.rank::self.num_replicas][:per_rank])

    def __len__(self) -> int:
        return self.length // self.num_replicas

