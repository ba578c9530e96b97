"""A restricted unpickler for the CIFAR archives.

``pickle.load`` runs whatever callable a file names, so a tampered archive could execute code. The
CIFAR python-format files are pickled dicts whose only non-builtin objects are numpy arrays; a numpy
array (pickle protocol 2) is rebuilt from exactly three globals:

- ``numpy.core.multiarray._reconstruct`` (written by numpy < 2; ``numpy._core.multiarray._reconstruct``
  by numpy >= 2),
- ``numpy.ndarray``,
- ``numpy.dtype``.

(Checked with ``pickletools`` on the CIFAR-10 files: these three ``GLOBAL`` opcodes are all they hold.)
One more is admitted for archives re-saved by Python 3 with protocol 2 (as the tests write them):
protocol 2 has no bytes opcode, so Python 3 writes the pixel bytes as ``_codecs.encode(text, "latin1")``.
That global resolves to :func:`_latin1_encode`, which only accepts the latin-1 codec.
:class:`CifarUnpickler` admits these and nothing else; dicts, lists, str, bytes and ints need no global.
Any other global, a truncated or corrupt file, or a file that does not hold a dict raises one
:class:`~focalbench.errors.DataError` line that names the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from focalbench.errors import DataError

try:  # numpy >= 2 moved the implementation to numpy._core; the numpy.core alias warns on access
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import _reconstruct


class ForbiddenGlobalError(pickle.UnpicklingError):
    """The file names a global outside :data:`ALLOWED_GLOBALS`."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (latin-1 only; other codecs are refused)."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise ForbiddenGlobalError(f"it calls _codecs.encode with codec {encoding!r}")
    return text.encode("latin1", errors)


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(
                f"it references '{module}.{name}', which a CIFAR archive never holds"
            ) from None


def _str_key(key: Any) -> Any:
    """Python-2 pickles read with ``encoding="bytes"`` give ``b"data"``; normalise keys to str."""
    return key.decode("latin1") if isinstance(key, bytes) else key


def load_pickled_dict(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR archive file with :class:`CifarUnpickler`.

    Args:
        path: a CIFAR python-format file (e.g. ``data_batch_1``, ``train``, ``batches.meta``).

    Returns:
        The pickled dict with str keys. Values are as pickled: ``data`` a uint8 numpy array, labels a
        list of ints, names a list of str or bytes (``encoding="bytes"`` keeps Python-2 strings as bytes,
        which avoids decoding the 30 MB pixel string; callers decode names).

    Raises:
        DataError: the file cannot be opened, references a forbidden global, is truncated or corrupt, or
            does not hold a dict.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            obj = CifarUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ForbiddenGlobalError as exc:
        raise DataError(f"refusing to load {path}: {exc} (not a CIFAR archive, or tampered with)") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as exc:
        raise DataError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it and download again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, expected a dict (not a CIFAR archive)")
    return {_str_key(k): v for k, v in obj.items()}
