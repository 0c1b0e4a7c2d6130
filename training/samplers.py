"""P×K batch sampling: every batch holds P identities with exactly K photos each."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence

from petid.errors import UserError


class SamplerError(UserError, ValueError):
    """The labels cannot fill a single P×K batch."""


class BalancedIdentitySampler:
    """A batch sampler (``DataLoader(batch_sampler=...)``) yielding index lists of length ``p * k``.

    Each epoch shuffles the identities and walks through them P at a time; each identity contributes K distinct
    photos drawn at random; an epoch is ``max(identities // P, photos // (P·K))`` batches, made of as many shuffled
    passes over the identities as needed (an identity appears at most once per batch). Identities with
    fewer than K photos are dropped (``small_identities="exclude"``) or sampled with replacement (``"replace"``);
    identities with a single photo can only be used with ``"replace"``. A trailing group of fewer than P
    identities is dropped, so every batch is full. ``set_epoch`` reseeds (DDP); ``rank``/``world_size`` give each
    process a disjoint share of the batches.
    """

    def __init__(self, labels: Sequence[Hashable], p: int = 58, k: int = 2, seed: int = 0,
                 small_identities: str = "exclude", rank: int = 0, world_size: int = 1) -> None:
        if small_identities not in ("exclude", "replace"):
            raise ValueError(f"small_identities {small_identities!r} is not exclude or replace")
        by_identity: dict[Hashable, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_identity[label].append(index)
        self.excluded = sorted((str(i) for i, idx in by_identity.items() if len(idx) < k)) if small_identities == "exclude" else []
        self.groups = {i: idx for i, idx in by_identity.items() if len(idx) >= k or small_identities == "replace"}
        if len(self.groups) < p:
            raise SamplerError(f"{len(self.groups)} usable identities (k={k}, {small_identities}) < p={p}: "
                               "lower p or add identities")
        self.p, self.k, self.seed = p, k, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        n_images = sum(len(idx) for idx in self.groups.values())
        # an epoch shows about every photo once: several shuffled passes over the identities when needed
        self.batches_per_epoch = max(len(self.groups) // p, n_images // (p * k))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        identities = sorted(self.groups, key=str)
        rng.shuffle(identities)
        batches: list[list[int]] = []
        while len(batches) < self.batches_per_epoch:
            rng.shuffle(identities)
            for start in range(0, len(identities) - self.p + 1, self.p):
                batch: list[int] = []
                for identity in identities[start:start + self.p]:
                    pool = self.groups[identity]
                    batch += rng.sample(pool, self.k) if len(pool) >= self.k else rng.choices(pool, k=self.k)
                batches.append(batch)
        return batches[: self.batches_per_epoch]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        usable = len(batches) - len(batches) % self.world_size
        yield from batches[self.rank:usable:self.world_size]

    def __len__(self) -> int:
        return self.batches_per_epoch // self.world_size
