"""The committed, ACTIVE model meets its floors on held-out and on REAL handwriting.

The held-out test split is rebuilt here from the version's own dataset config
(real MNIST test digits and freshly generated test glyphs, whose seeds the
training split never used), so the figures are measured, not read back.
"""
import json

import numpy as np
import pytest

from models import registry
from training import dataset, validate_real

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def active():
    version = registry.active_version()
    model = registry.load_model(version)
    config = json.loads((registry.version_dir(version) / "config.json").read_text())
    return version, model, config


def _predict(model, x):
    return np.concatenate([model(x[i : i + 1024], training=False).numpy() for i in range(0, len(x), 1024)]).argmax(1)


def test_held_out_floors(active):
    version, model, config = active
    data_config = dataset.DatasetConfig.from_dict(config["dataset"]["config"])
    arrays = dataset.build(data_config, splits=("test",))
    predicted = _predict(model, dataset.to_float(arrays["x_test"]))
    truth, sources = arrays["y_test"], arrays["src_test"]
    mnist = (predicted[sources == "mnist"] == truth[sources == "mnist"]).mean()
    operators = (predicted[sources == "generated-operator"] == truth[sources == "generated-operator"]).mean()
    assert (sources == "mnist").sum() == 2000
    assert mnist >= 0.990, f"{version}: MNIST test split {mnist:.4f}"
    assert operators >= 0.995, f"{version}: generated operators {operators:.4f}"


def test_real_handwriting_floors(active):
    if not (validate_real.DEFAULT_DATA / "symbols" / "manifest.csv").exists():
        pytest.skip(f"no CROHME validation data at {validate_real.DEFAULT_DATA}: real-handwriting floors not checked")
    version, model, _ = active
    result = validate_real.evaluate(lambda b: model(b, training=False).numpy(), validate_real.load_symbols())
    report = result["report"]
    assert report["n"] > 5000 and report["writers"] > 100
    misses = validate_real.meets_floors(report)
    assert not misses, f"{version} on the report half of the writers: " + "; ".join(misses)
