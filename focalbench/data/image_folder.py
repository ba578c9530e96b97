"""Your own images (``data=image_folder``): a folder with one sub-folder per class, torchvision's ImageFolder layout.

    path/
        cat/  001.png  002.jpg  more/003.png ...
        dog/  ...

Keys (``configs/data/image_folder.yaml`` holds their defaults):

- ``path``: the folder. The classes are its sub-folder names in sorted order (as ImageFolder); every
  ``.png``, ``.jpg``/``.jpeg``, ``.gif`` and ``.webp`` file below a class folder (recursively) is an example
  of that class. Hidden files and folders, and files directly in ``path``, are ignored.
- ``test_path``: a test folder in the same layout, used as it is (its class folders must be among the
  training folder's); null carves ``test_fraction`` of each class (stratified, with the data seed).
- ``image_size``: every image is decoded once with ``torchvision.io.decode_image`` (as RGB), resized so its
  shorter side is ``image_size`` (antialiased) and centre-cropped to ``image_size`` x ``image_size``
  (32 by default, as CIFAR; a multiple of 8, which the ``cnn`` needs).
- ``augment``: the random crop (4-pixel zero padding) of CIFAR, batched on the device
  (:mod:`focalbench.data.batches`); with ``flip`` also CIFAR's horizontal flip.
- ``flip``: flip training images horizontally at random (default false). A flip is harmless for CIFAR's
  objects but changes what digits, letters, arrows or any left/right-specific image mean: on a digits folder
  it gave 33 % balanced accuracy against 56 % without. ``flip=true`` trains as this source did before the key
  existed (the run ids of those records are kept).

The images are held on the device as one uint8 ``[N, 3, image_size, image_size]`` tensor, normalised per
batch with the per-channel mean and std of the training split (exact, from pixel histograms).

**Cache.** Decoding is done once: the decoded images go to ``$FOCALBENCH_CACHE/image_folder/<key>.npz``
(``~/.cache/focalbench/image_folder/`` when the variable is unset), keyed by the sha256 of the folder's
absolute path, ``image_size`` and every image's relative name, size and modification time, so a changed,
added or removed file decodes the folder again. The file is written atomically and read back without
pickles; a cache that cannot be written or read is skipped. In one process the decoded folder is also
kept in memory, so a sweep decodes (or reads the cache) once.

A file that cannot be decoded (truncated, or not an image), a folder with no images, or a class folder
with no image is an error naming it; so is a ``path`` whose sub-folders are splits (``train/`` and
``test/`` or ``val/``, holding the class folders), with the ``path`` and ``test_path`` to use instead. Models: ``cnn``, ``resnet32`` (or ``mlp``, flattened).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from focalbench.config import config_field, other_data_option_hint, typed_field
from focalbench.data.cifar import channel_mean_std
from focalbench.data.own import (
    OwnArrays,
    SplitSettings,
    cache_root,
    optional_path,
    register_source,
    required_path,
    split_settings,
)
from focalbench.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
CACHE_VERSION = 1  # bump when the decoding or resizing changes: old cache files are then ignored
CACHE_FOLDER = "image_folder"
MAX_IMAGE_SIZE = 512
# Sub-folder names that mean a split, not a class: a folder holding train/ and test/ is a data set's splits.
TRAIN_NAMES = ("train", "training")
HELD_OUT_NAMES = ("test", "testing", "val", "valid", "validation")


@dataclass(frozen=True)
class Listing:
    """The images of one folder, sorted by class then relative name."""

    root: str  # absolute path
    classes: tuple[str, ...]  # sorted sub-folder names (including any with no image)
    files: tuple[str, ...]  # relative POSIX paths
    labels: tuple[int, ...]  # index into classes, per file
    sizes: tuple[int, ...]
    mtimes: tuple[int, ...]

    def cache_key(self, image_size: int) -> str:
        payload = [
            CACHE_VERSION,
            self.root,
            image_size,
            list(zip(self.files, self.sizes, self.mtimes, strict=True)),
        ]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def provenance(self) -> dict:
        """Path, number of images, total bytes and the sha256 of the sorted relative names and sizes."""
        lines = "".join(f"{name}\t{size}\n" for name, size in zip(self.files, self.sizes, strict=True))
        return {
            "path": self.root,
            "files": len(self.files),
            "bytes": sum(self.sizes),
            "sha256": hashlib.sha256(lines.encode()).hexdigest(),
            "sha256_of": "the sorted relative file names and sizes (name<TAB>size<LF> per image)",
        }


def scan_folder(root: Path, what: str = "image folder") -> Listing:
    """List the images of ``root`` (layout in the module docstring); DataError when there are none."""
    if not root.exists():
        raise DataError(f"{root}: no such {what}")
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder (data=image_folder reads a folder with one sub-folder per class)"
            f"{other_data_option_hint(root, 'image_folder')}"
        )
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    files, labels, sizes, mtimes = [], [], [], []
    for index, name in enumerate(classes):
        for folder, subfolders, filenames in os.walk(root / name, followlinks=True):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith(".") or not filename.lower().endswith(IMAGE_SUFFIXES):
                    continue
                full = Path(folder) / filename
                stat = full.stat()
                files.append(full.relative_to(root).as_posix())
                labels.append(index)
                sizes.append(stat.st_size)
                mtimes.append(stat.st_mtime_ns)
    if not files:
        raise DataError(
            f"{root}: no images; expected one sub-folder per class holding {', '.join(IMAGE_SUFFIXES)} files"
        )
    return Listing(
        str(root.resolve()), tuple(classes), tuple(files), tuple(labels), tuple(sizes), tuple(mtimes)
    )


def check_not_split_folders(root: Path) -> None:
    """ConfigError when ``root``'s sub-folders are a data set's splits (``train/``, ``test/``, each holding
    class folders) rather than its classes: read as classes they would be the classes "test" and "train"."""
    if not root.is_dir():
        return
    folders = {e.name: e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")}
    train = next((folders[n] for n in TRAIN_NAMES if n in folders), None)
    held_out = next((folders[n] for n in HELD_OUT_NAMES if n in folders), None)
    if train is None or held_out is None or not set(folders) <= {*TRAIN_NAMES, *HELD_OUT_NAMES}:
        return
    if not any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(train.path)):
        return  # images straight in train/: not the split layout we can point at
    raise ConfigError(
        f"data.path={root}: its sub-folders {', '.join(sorted(folders))} look like splits, not classes; "
        f"use data.path={root / train.name} data.test_path={root / held_out.name}"
    )


def _decode_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rsplit(".cpp:", 1)[-1].lstrip("0123456789, ")[:120] or type(exc).__name__


def decode_one(path: Path, image_size: int) -> torch.Tensor:
    """One image file as uint8 ``[3, image_size, image_size]``: decoded as RGB, shorter side resized, centre crop."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2 import functional as TF

    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except Exception as exc:  # torchvision raises RuntimeError for any undecodable file
        raise DataError(
            f"{path}: cannot decode the image, truncated or not an image ({_decode_reason(exc)})"
        ) from None
    if image.ndim == 4:  # an animated GIF: its first frame
        image = image[0]
    image = TF.resize(image, image_size, antialias=True)
    return TF.center_crop(image, [image_size, image_size])


def decode_listing(listing: Listing, image_size: int) -> np.ndarray:
    """Every image of ``listing``, decoded: uint8 ``[N, 3, image_size, image_size]``."""
    root = Path(listing.root)
    out = np.empty((len(listing.files), 3, image_size, image_size), dtype=np.uint8)
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they are what this reads with.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        for i, name in enumerate(listing.files):
            out[i] = decode_one(root / name, image_size).numpy()
    return out


def cache_path(listing: Listing, image_size: int) -> Path:
    return cache_root() / CACHE_FOLDER / f"{listing.cache_key(image_size)}.npz"


def read_cache(path: Path, listing: Listing, image_size: int) -> np.ndarray | None:
    """The cached images of ``listing``, or None when there is no valid cache file (never a pickle)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as cached:
            files, x = cached["files"], cached["x"]
    except Exception:  # a damaged cache file is decoded again, never an error
        return None
    expected = (len(listing.files), 3, image_size, image_size)
    if x.dtype != np.uint8 or x.shape != expected or files.tolist() != list(listing.files):
        return None
    return x


def write_cache(path: Path, listing: Listing, x: np.ndarray) -> None:
    """Write the decoded images atomically (``record.write_atomic``); skipped if the folder is read-only."""
    from focalbench.training.record import write_atomic

    def save(f) -> None:
        np.savez(
            f,
            x=x,
            files=np.asarray(listing.files, dtype=str),
            classes=np.asarray(listing.classes, dtype=str),
        )

    try:
        write_atomic(path, save)
    except OSError:
        return  # a read-only data folder: the cache is an optimisation, not a requirement


@functools.lru_cache(maxsize=4)
def _decoded(listing: Listing, image_size: int) -> tuple[np.ndarray, bool]:
    """``(images, from_cache)`` of a listing: the on-disk cache if valid, else decoded (not yet written)."""
    x = read_cache(cache_path(listing, image_size), listing, image_size)
    if x is not None:
        x.flags.writeable = False
        return x, True
    x = decode_listing(listing, image_size)
    x.flags.writeable = False
    return x, False


@functools.lru_cache(maxsize=4)
def _read_images_cached(listing: Listing, test_listing: Listing | None, image_size: int) -> OwnArrays:
    where = listing.root
    present = set(listing.labels)
    empty = [c for i, c in enumerate(listing.classes) if i not in present]
    if empty:
        shown = ", ".join(f"'{c}'" for c in empty[:5])
        raise DataError(f"{where}: class folder(s) {shown} hold no images")
    # Decode both folders before writing either cache, so that a bad test image leaves nothing behind.
    x, from_cache = _decoded(listing, image_size)
    x_test = y_test = test_provenance = None
    if test_listing is not None:
        unknown = sorted({test_listing.classes[i] for i in test_listing.labels} - set(listing.classes))
        if unknown:
            shown = ", ".join(f"'{c}'" for c in unknown[:5])
            raise DataError(
                f"{test_listing.root}: test class folder(s) {shown} have no training example in {where}"
            )
        x_test, test_from_cache = _decoded(test_listing, image_size)
        index = {name: i for i, name in enumerate(listing.classes)}
        y_test = np.asarray([index[test_listing.classes[i]] for i in test_listing.labels], dtype=np.int64)
        test_provenance = test_listing.provenance()
        if not test_from_cache:
            write_cache(cache_path(test_listing, image_size), test_listing, x_test)
    if not from_cache:
        write_cache(cache_path(listing, image_size), listing, x)
    return OwnArrays(
        x=x,
        y=np.asarray(listing.labels, dtype=np.int64),
        x_test=x_test,
        y_test=y_test,
        class_names=listing.classes,
        label_order="sorted sub-folder names (as torchvision's ImageFolder)",
        provenance=listing.provenance(),
        test_provenance=test_provenance,
        extra={
            "image_size": image_size,
            "resize": "shorter side to image_size (antialiased), then a centre crop",
            "n_images": len(listing.files),
        },
    )


def image_size_of(cfg) -> int:
    size = typed_field(cfg, "image_size", int, "data")
    if not (8 <= size <= MAX_IMAGE_SIZE and size % 8 == 0):
        raise ConfigError(
            f"data.image_size={size} is out of range: a multiple of 8 from 8 to {MAX_IMAGE_SIZE}"
        )
    return size


def read_images(cfg) -> tuple[OwnArrays, SplitSettings, str]:
    """The folder ``cfg`` names, decoded (cached on disk and in memory), and its split settings."""
    path = required_path(
        cfg, "path", "the folder with one sub-folder of images per class (data.path=my_images)"
    )
    test_path = optional_path(cfg, "test_path")
    image_size = image_size_of(cfg)
    typed_field(cfg, "augment", bool, "data")
    flip_setting(cfg)
    settings = split_settings(cfg)
    check_not_split_folders(path)
    listing = scan_folder(path)
    test_listing = None if test_path is None else scan_folder(test_path, "test folder")
    return _read_images_cached(listing, test_listing, image_size), settings, str(path)


def flip_setting(cfg) -> bool:
    """``data.flip`` (absent: true, as before the key existed)."""
    if config_field(cfg, "flip", None, missing="") is None:
        return True
    return typed_field(cfg, "flip", bool, "data")


register_source(
    "image_folder",
    "your own images, one sub-folder per class (data.path)",
    "image",
    read_images,
    lambda cfg: {"augment": bool(cfg.augment), "flip": flip_setting(cfg), "channel_stats": channel_mean_std},
)
