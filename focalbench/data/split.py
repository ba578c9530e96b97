"""The one object every data source returns: :class:`SplitData`.

A ``SplitData`` holds a whole task resident on the training device, in the spirit of airbench: the
training loop slices batches out of these tensors (see :mod:`focalbench.data.batches`) instead of
going through a ``DataLoader``.

Contract of the tensors (all on the same device):

- images (``kind == "image"``): ``*_x`` uint8 ``[N, 3, H, W]`` (raw pixels 0..255, NCHW; 32x32 for CIFAR,
  ``data.image_size`` for an image folder);
  ``mean``/``std`` float32 ``[1, 3, 1, 1]`` in units of pixel/255, used by the batch iterators as
  ``x_normalised = (x / 255 - mean) / std``.
- vectors (``kind == "vector"``): ``*_x`` float32 ``[N, F]``, used as they are; ``mean``/``std`` are None.
- labels: int64 ``[N]`` with values in ``0 .. n_classes - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class SplitData:
    """A long-tailed training split, a validation split carved from it, and a test set.

    Attributes:
        name: the data source (``"synthetic"``, ``"cifar10_lt"``, ``"table"``, ...).
        kind: ``"vector"`` or ``"image"``.
        n_classes: number of classes C.
        class_names: C names, index = label.
        train_x, train_y: the training split (the long-tailed set minus the validation split).
        val_x, val_y: stratified validation split carved from the long-tailed set (may hold 0 rows).
        test_x, test_y: the test set (balanced for synthetic and CIFAR; your own data's may not be).
        train_counts: per-class counts of ``train_y``.
        longtail_counts: per-class counts of the long-tailed set before the validation split was carved.
        mean, std: image normalisation, float32 ``[1, 3, 1, 1]``; None for vectors.
        augment: whether :func:`~focalbench.data.batches.iter_train_batches` augments by default.
        info: JSON-serialisable provenance (dataset, imbalance, profile, split sizes, data_seed, root,
            files with md5s, official_copy, ...; your own data adds measured_imbalance and provenance).
        flip: whether augmentation flips images horizontally (CIFAR: yes; your own image folder: only with
            ``data.flip=true``, since a flip changes what many images mean: digits, text, arrows).
        feature_summary: per-feature rows of the raw training split (name, mean, std, min, max) for
            ``focalbench data info``; empty for sources that do not describe their features. Not recorded.
    """

    name: str
    kind: str
    n_classes: int
    class_names: list[str]
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    train_counts: list[int]
    longtail_counts: list[int]
    mean: Tensor | None
    std: Tensor | None
    augment: bool
    info: dict
    feature_summary: list[dict] = field(default_factory=list)
    flip: bool = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: ``(3, 32, 32)`` for images, ``(F,)`` for vectors."""
        return tuple(self.train_x.shape[1:])

    @property
    def device(self):
        """The device all tensors live on."""
        return self.train_x.device
