"""The training data order: micro-batch keys by step, and which files each micro-batch reads.

A micro-batch reads its images only when the VAE must encode them (no latent cache) or when it runs the chain (the
positive's features), and its negatives only when it runs the chain of variant ``mpc``; the random draws of the
dataset are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from scoft.seeds import mix_seed

Key = tuple[int, int] | tuple[int, int, bool, bool]
__all__ = ["EpochIndexed", "ReadingSampler", "StepBatchSampler", "is_chain_step", "mix_seed", "reads_for"]


class EpochIndexed(torch.utils.data.Dataset):
    """Items addressed by (epoch, index[, images, negatives]), so the dataset's per-epoch augmentation is exact in
    worker processes too."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Key) -> dict[str, Any]:
        epoch, index, *reads = key
        self.dataset.set_epoch(epoch)
        if not reads:
            return self.dataset[index]
        images, negatives = reads
        return self.dataset.item(index, images=images, negatives=negatives)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Index lists for micro-batches ``start .. stop-1``: each epoch a permutation seeded by (seed, epoch), split
    into global batches of ``batch_size * num_processes`` (the remainder is dropped); this process takes its slice."""

    def __init__(
        self, n: int, batch_size: int, seed: int, start: int, stop: int, num_processes: int = 1, process_index: int = 0
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop = start, stop
        self.num_processes, self.process_index = num_processes, process_index
        self.per_epoch = n // (batch_size * num_processes)
        if self.per_epoch < 1:
            raise ValueError(f"{n} training images cannot fill one batch of {batch_size} x {num_processes} processes")

    def indices(self, micro_step: int) -> list[tuple[int, int]]:
        """(epoch, dataset index) pairs of this process's part of micro-batch ``micro_step``."""
        epoch, pos = divmod(micro_step, self.per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0xDA7A)))
        offset = (pos * self.num_processes + self.process_index) * self.batch_size
        return [(epoch, i) for i in perm[offset : offset + self.batch_size].tolist()]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for m in range(self.start, self.stop):
            yield self.indices(m)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


class ReadingSampler(Sampler[list[Key]]):
    """``StepBatchSampler``'s keys with what each micro-batch reads: ``reads(micro_step)`` -> (images, negatives)."""

    def __init__(self, steps: StepBatchSampler, reads: Callable[[int], tuple[bool, bool]]) -> None:
        self.steps, self.reads = steps, reads

    def __iter__(self) -> Iterator[list[Key]]:
        for m in range(self.steps.start, self.steps.stop):
            images, negatives = self.reads(m)
            yield [(e, i, images, negatives) for e, i in self.steps.indices(m)]

    def __len__(self) -> int:
        return len(self.steps)


def is_chain_step(config: Any, micro_step: int) -> bool:
    return config.uses_chain and micro_step % config.contrastive_interval == 0


def reads_for(config: Any, latents_cached: bool, lazy: bool = True) -> Callable[[int], tuple[bool, bool]]:
    """What micro-batch ``m`` reads; ``lazy=False`` reads images and negatives on every micro-batch (the old path)."""

    def reads(m: int) -> tuple[bool, bool]:
        chain = is_chain_step(config, m)
        if not lazy:
            return True, True
        return (chain or not latents_cached), chain and config.uses_negatives

    return reads
