"""Seeded random streams for data generation, independent of the global RNG and of the training seed.

Every random choice in ``focalbench.data`` draws from a ``torch.Generator`` made by
:func:`child_generator` from ``(data_seed, stream name)``. Giving each purpose (class means, training
samples, test samples, the validation split, ...) its own stream means that changing one setting, say
``test_per_class``, does not reshuffle the others.
"""

from __future__ import annotations

import hashlib

import torch


def stream_seed(data_seed: int, stream: str) -> int:
    """A 63-bit seed derived from ``(data_seed, stream)`` by SHA-256 (stable across processes and runs,
    unlike Python's salted ``hash``)."""
    digest = hashlib.sha256(f"focalbench-data:{int(data_seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def child_generator(data_seed: int, stream: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`stream_seed`. Draw on the CPU, then move the result
    to the device: CPU draws are identical on every machine."""
    return torch.Generator().manual_seed(stream_seed(data_seed, stream))
