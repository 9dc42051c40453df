"""The base of every training dataset: sample ``i`` is a pure function of (seed, epoch, i), so a
resumed run, any number of loader workers and every rank of a distributed run see the same data."""

from __future__ import annotations

import numpy as np
import torch


class SeededDataset(torch.utils.data.Dataset):
    """A map-style dataset of ``samples_per_epoch`` samples (default: ``count``, e.g. one per
    video); :meth:`generator` gives sample ``index``'s numpy Generator in the current epoch."""

    def __init__(self, count: int, samples_per_epoch: int | None, seed: int) -> None:
        self._count, self._samples_per_epoch, self._seed = count, samples_per_epoch, seed
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its permutation), see shuffled()

    def __len__(self) -> int:
        return self._samples_per_epoch or self._count

    def set_epoch(self, epoch: int) -> None:
        """Draw different samples in each epoch (the same ones for the same epoch, whatever the workers)."""
        self.epoch = epoch

    def generator(self, index: int) -> np.random.Generator:
        """The Generator of sample ``index`` in the current epoch; IndexError outside the epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range 0..{len(self) - 1}")
        return np.random.default_rng([self._seed, self.epoch, index])

    def shuffled(self, index: int) -> int:
        """Item ``order[index % count]`` of a permutation of ``range(count)`` drawn from (seed, epoch):
        each epoch visits every item once in its own order, as a shuffling sampler does."""
        if self._order is None or self._order[0] != self.epoch:
            # two entropy words, never three: apart from every per-sample Generator
            self._order = (self.epoch, np.random.default_rng([self._seed, self.epoch]).permutation(self._count))
        return int(self._order[1][index % self._count])
