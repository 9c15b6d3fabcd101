"""MNIST and Fashion-MNIST from local files; nothing is ever downloaded.

Two layouts are read: Keras' ``.npz`` (keys ``x_train, y_train, x_test,
y_test``; uint8 images (n, 28, 28), labels (n,)) and the original IDX files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
``.gz``). Where to look, first match wins (an explicit location that does not
exist is an error, not a reason to look further):

1. ``data.path`` in the config: a ``.npz`` file or a directory;
2. ``$IB_SWEEPS_MNIST`` / ``$IB_SWEEPS_FASHION_MNIST``: the same;
3. ``$IB_SWEEPS_DATA``: a directory holding ``mnist.npz`` or ``mnist/``
   (``fashion_mnist.npz`` or ``fashion_mnist/``);
4. Keras' cache, ``$KERAS_HOME`` or ``~/.keras``: ``datasets/mnist.npz``
   (``datasets/fashion-mnist/``), where ``keras.datasets`` keeps what it fetched.

A directory is read as ``<name>.npz`` if it holds one, else as IDX files.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
# IDX magic numbers: 0x00000803 = unsigned bytes, 3 dimensions (images); 0x00000801 = 1 dimension (labels).
_MAGIC = {"images": 0x0803, "labels": 0x0801}


@dataclass(frozen=True)
class FileSet:
    """Where one file-backed data set may live."""

    name: str  # the data set, also the npz / directory name under $IB_SWEEPS_DATA
    env: str  # its own environment variable
    keras_cache: str  # its name under <keras home>/datasets


MNIST = FileSet("mnist", "IB_SWEEPS_MNIST", "mnist.npz")
FASHION_MNIST = FileSet("fashion_mnist", "IB_SWEEPS_FASHION_MNIST", "fashion-mnist")
DATA_DIR_ENV = "IB_SWEEPS_DATA"


def expected(files: FileSet) -> str:
    """What a user must provide, for error messages."""
    return (
        f"the Keras file {files.name}.npz (keys {', '.join(NPZ_KEYS)}; uint8 images 28x28) or the four IDX files "
        f"{', '.join(IDX_FILES)} (each optionally .gz) in one directory; point data.path or ${files.env} at the "
        f"file or directory, or ${DATA_DIR_ENV} at a directory holding {files.name}.npz or {files.name}/. "
        "Nothing is downloaded"
    )


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def locate(files: FileSet, path: str | None) -> tuple[Path | None, str]:
    """(file or directory to read, or None; where it came from). See the module docstring for the order."""
    if path:
        return Path(path).expanduser(), f"data.path = {path!r}"
    if os.environ.get(files.env):
        return Path(os.environ[files.env]).expanduser(), f"${files.env} = {os.environ[files.env]!r}"
    looked = []
    if os.environ.get(DATA_DIR_ENV):
        root = Path(os.environ[DATA_DIR_ENV]).expanduser()
        for candidate in (root / f"{files.name}.npz", root / files.name):
            if candidate.exists():
                return candidate, f"${DATA_DIR_ENV} = {str(root)!r}"
        looked.append(f"${DATA_DIR_ENV} = {str(root)!r} has neither {files.name}.npz nor {files.name}/")
    cache = _keras_home() / "datasets" / files.keras_cache
    if cache.exists():
        return cache, f"the Keras cache {cache}"
    looked.append(f"no Keras cache at {cache}")
    return None, "; ".join([f"${files.env} and data.path are unset", *looked])


def _idx_paths(directory: Path) -> dict[str, Path] | list[str]:
    """The four IDX files (plain or .gz) in ``directory``, or the names it lacks."""
    found, lacking = {}, []
    for name in IDX_FILES:
        hits = [p for p in (directory / name, directory / f"{name}.gz") if p.is_file()]
        if hits:
            found[name] = hits[0]
        else:
            lacking.append(name)
    return lacking or found


def missing(files: FileSet, path: str | None) -> str | None:
    """Why ``files`` cannot be read on this machine (naming what is expected and where), or None."""
    where, origin = locate(files, path)
    if where is None:
        return f"{files.name}: no data file found ({origin}); expected {expected(files)}"
    if not where.exists():
        return f"{files.name}: {origin} does not exist; expected {expected(files)}"
    if where.is_dir() and not (where / f"{files.name}.npz").is_file():
        lacking = _idx_paths(where)
        if isinstance(lacking, list):
            return f"{files.name}: directory {where} ({origin}) lacks {', '.join(lacking)}; expected {expected(files)}"
    elif where.is_file() and where.suffix != ".npz":
        return f"{files.name}: {where} ({origin}) is not a .npz file; expected {expected(files)}"
    return None


def read_idx(path: Path, kind: str) -> np.ndarray:
    """One IDX file (``kind`` ``images`` or ``labels``), uint8, shape from its header; ValueError if malformed."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        buf = f.read()
    magic = int.from_bytes(buf[:4], "big") if len(buf) >= 4 else None
    if magic != _MAGIC[kind]:
        got = f"0x{magic:08x}" if magic is not None else "a file shorter than 4 bytes"
        raise ValueError(f"{path}: not an IDX {kind} file: magic number {got}, expected 0x{_MAGIC[kind]:08x}")
    ndim = buf[3]
    shape = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    body = np.frombuffer(buf, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} ({int(np.prod(shape))} bytes) but {body.size} follow")
    return body.reshape(shape)


def _check(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{what}: images must be uint8 of shape (n, 28, 28); got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{what}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= N_CLASSES):
        raise ValueError(f"{what}: labels must be integers 0..{N_CLASSES - 1}")


@functools.lru_cache(maxsize=2)
def _read(where: str, mtime_ns: int, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(images (n, 28, 28) uint8, labels (n,) int32, n_train): train rows first, then test."""
    path = Path(where)
    if path.is_dir() and (path / f"{name}.npz").is_file():
        path = path / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            absent = [k for k in NPZ_KEYS if k not in f.files]
            if absent:
                raise ValueError(f"{path}: lacks the keys {absent}; a Keras-layout .npz holds {', '.join(NPZ_KEYS)}")
            x_tr, y_tr, x_te, y_te = (f[k] for k in NPZ_KEYS)
    else:
        p = _idx_paths(path)
        x_tr, y_tr = read_idx(p[IDX_FILES[0]], "images"), read_idx(p[IDX_FILES[1]], "labels")
        x_te, y_te = read_idx(p[IDX_FILES[2]], "images"), read_idx(p[IDX_FILES[3]], "labels")
    _check(x_tr, y_tr, f"{path} (training split)")
    _check(x_te, y_te, f"{path} (test split)")
    x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te]).astype(np.int32)
    x.setflags(write=False), y.setflags(write=False)  # cached: shared by every trial in this process
    return x, y, len(x_tr)


def read(files: FileSet, path: str | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(images (n, 28, 28) uint8, labels (n,) int32, n_train) with the training split first.

    Raises ``FileNotFoundError`` naming the expected files and variables when
    nothing is found, ``ValueError`` when a file is malformed.
    """
    problem = missing(files, path)
    if problem is not None:
        raise FileNotFoundError(problem)
    where, _ = locate(files, path)
    return _read(str(where.resolve()), where.stat().st_mtime_ns, files.name)
