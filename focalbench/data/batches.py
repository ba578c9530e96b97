"""Batches straight from device-resident tensors: no DataLoader, no per-sample Python work.

Training epoch (:func:`iter_train_batches`):

1. one ``torch.randperm(N, generator=generator)`` orders the whole epoch; every training index appears
   exactly once, and the last partial batch is kept;
2. for images with augmentation on, all random crop offsets and flip bits of the epoch are drawn up front
   from the same generator (three draws per epoch in all);
3. per batch, on the device: gather the uint8 images, pad them once with 4 zero pixels per side, cut a
   32x32 window at a per-sample offset ``(dy, dx) in [0, 8]^2`` by index arithmetic (one ``gather``),
   flipping horizontally by reversing the column indices where the flip bit is set
   (``torch.where``); then normalise ``(x / 255 - mean) / std`` in float32.

The pad is in raw pixel space, so padded pixels are black (0) before normalisation, as with
torchvision's ``RandomCrop(32, padding=4)`` on a PIL image. The random draws happen on the generator's
device (use a CPU generator for results that are identical on every machine) and are then moved to the
data's device. The same generator state gives the same batches.

Vectors (``kind == "vector"``) are yielded as they are (float32), never augmented.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from focalbench.data.split import SplitData
from focalbench.errors import ConfigError

PAD = 4
EVAL_SPLITS = ("train", "val", "test")


def normalise(data: SplitData, x: Tensor) -> Tensor:
    """Float32 model input: images ``(x / 255 - mean) / std`` (NCHW); vectors unchanged (as float32).

    Images are computed as ``x * (1 / (255 std)) + (-mean / std)``, in place on the fresh float copy
    (the same value up to float rounding, one pass fewer).
    """
    if data.kind != "image":
        return x.float()
    scale = 1.0 / (255.0 * data.std)
    shift = -data.mean / data.std
    return x.float().mul_(scale).add_(shift)


def crop_flip(images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, pad: int = PAD) -> Tensor:
    """Random-crop-with-padding and horizontal flip of a batch, by index arithmetic.

    Output ``[b, c, i, j] = padded[b, c, dy[b] + i, dx[b] + j']`` with ``j' = W - 1 - j`` where ``flip[b]``,
    else ``j' = j``; ``padded`` is ``images`` with ``pad`` zero pixels on every side. The window is read
    with one ``torch.gather`` over the flattened padded planes at linear offsets
    ``(dy + i) * (W + 2 pad) + dx + j'`` (several times faster on a CPU than four-tensor advanced indexing).

    Args:
        images: ``[B, C, H, W]`` (any dtype) on the device.
        dy, dx: int64 ``[B]`` offsets in ``[0, 2 * pad]`` on the same device.
        flip: bool ``[B]`` on the same device.
        pad: zero padding per side.

    Returns:
        ``[B, C, H, W]``, same dtype and device as ``images``.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)).reshape(b, c, -1)
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    cols = dx[:, None] + torch.where(flip[:, None], cols.flip(0), cols)  # [B, W]
    offsets = (dy[:, None] + rows)[:, :, None] * (w + 2 * pad) + cols[:, None, :]  # [B, H, W]
    return padded.gather(2, offsets.reshape(b, 1, h * w).expand(b, c, h * w)).reshape(b, c, h, w)


def iter_train_batches(
    data: SplitData, batch_size: int, generator: torch.Generator, augment: bool | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """One shuffled epoch of normalised training batches (see the module docstring).

    Args:
        data: the task.
        batch_size: samples per batch (the last batch may be smaller).
        generator: drives the shuffle and the augmentation; advance it once per epoch by iterating.
        augment: crop+flip images; None uses ``data.augment``. Ignored for vectors.

    Yields:
        ``(x, y)``: float32 ``[b, *input_shape]`` and int64 ``[b]`` on ``data``'s device.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    n = data.train_y.numel()
    do_augment = (data.augment if augment is None else augment) and data.kind == "image"
    perm, offsets, flips = _draw_epoch(data, generator, do_augment)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        x = data.train_x[idx]
        if do_augment:
            window = slice(start, start + idx.numel())
            x = crop_flip(x, offsets[0, window], offsets[1, window], flips[window])
        yield normalise(data, x), data.train_y[idx]


def _draw_epoch(data: SplitData, generator: torch.Generator, augment: bool) -> tuple[Tensor, ...]:
    """An epoch's random draws from ``generator``, in this order: the permutation, then (with ``augment``) the
    crop offsets ``[2, N]`` and the flip bits ``[N]`` (None without); all moved to the data's device. Without
    ``data.flip`` the flip bits are drawn all the same (so the draws that follow do not move) and cleared."""
    n = data.train_y.numel()
    device = data.train_x.device
    perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
    if not augment:
        return perm, None, None
    offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=generator, device=generator.device)
    flips = torch.randint(0, 2, (n,), generator=generator, device=generator.device).bool()
    if not data.flip:
        flips = torch.zeros_like(flips)
    return perm, offsets.to(device), flips.to(device)


def iter_member_batches(
    data: SplitData, batch_size: int, generators: list[torch.Generator], augment: bool | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """:func:`iter_train_batches` for K models at once (a fused group): model k's batches are exactly the ones
    ``iter_train_batches(data, batch_size, generators[k], augment)`` yields (the same draws from its own
    generator, the same per-sample crop, flip and normalisation), built with one gather per step.

    Yields:
        ``(x, y)``: float32 ``[K, b, *input_shape]`` and int64 ``[K, b]``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    n, k = data.train_y.numel(), len(generators)
    do_augment = (data.augment if augment is None else augment) and data.kind == "image"
    draws = [_draw_epoch(data, g, do_augment) for g in generators]
    perm = torch.stack([d[0] for d in draws])  # [K, N]
    if do_augment:
        offsets = torch.stack([d[1] for d in draws])  # [K, 2, N]
        flips = torch.stack([d[2] for d in draws])  # [K, N]
    for start in range(0, n, batch_size):
        idx = perm[:, start : start + batch_size]
        b = idx.shape[1]
        x = data.train_x[idx.reshape(-1)]
        if do_augment:
            window = slice(start, start + b)
            x = crop_flip(
                x,
                offsets[:, 0, window].reshape(-1),
                offsets[:, 1, window].reshape(-1),
                flips[:, window].reshape(-1),
            )
        yield normalise(data, x).view(k, b, *data.input_shape), data.train_y[idx]


def iter_eval_batches(data: SplitData, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Normalised batches of one split in stored order, without augmentation.

    Args:
        data: the task.
        split: ``"val"`` or ``"test"`` (``"train"`` gives the training split unaugmented).
        batch_size: samples per batch (the last batch may be smaller).

    Yields:
        ``(x, y)``: float32 ``[b, *input_shape]`` and int64 ``[b]``. An empty split yields nothing.
    """
    if split not in EVAL_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(EVAL_SPLITS)}; got {split!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    xs, ys = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    for start in range(0, ys.numel(), batch_size):
        yield normalise(data, xs[start : start + batch_size]), ys[start : start + batch_size]
