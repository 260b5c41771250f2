"""Temperature scaling of the classifier's probabilities (no model involved)."""
import numpy as np

from workers.pipeline.calibration import apply_temperature, fit_temperature, negative_log_likelihood, temperature_of


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_scaling_probabilities_is_scaling_the_logits_and_keeps_every_ranking():
    logits = np.random.default_rng(1).normal(0, 3, (50, 16))
    for temperature in (0.5, 1.0, 2.0):
        scaled = apply_temperature(_softmax(logits), temperature)
        np.testing.assert_allclose(scaled, _softmax(logits / temperature), atol=1e-5)
        np.testing.assert_array_equal(np.argsort(scaled, axis=1), np.argsort(_softmax(logits), axis=1))


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    # An underconfident model: labels follow softmax(2 z), the model says softmax(z); T = 0.5.
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1.5, (20000, 16))
    truth = _softmax(2 * logits)
    labels = np.array([rng.choice(16, p=row) for row in truth])
    model = _softmax(logits)
    temperature = fit_temperature(model, labels)
    assert abs(temperature - 0.5) <= 0.05
    assert negative_log_likelihood(apply_temperature(model, temperature), labels) < negative_log_likelihood(model, labels)


def test_a_temperature_that_is_not_positive_is_refused():
    import pytest

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            apply_temperature(np.full((1, 16), 1 / 16), bad)


def test_a_versions_temperature_is_read_from_its_config_and_must_be_positive():
    import pytest

    assert temperature_of({"calibration": {"temperature": 0.56}}) == 0.56
    assert temperature_of({}) == 1.0 and temperature_of({"calibration": None}) == 1.0  # fitted none
    for bad in (0, -0.5):  # a zero must not pass for "none"
        with pytest.raises(ValueError, match="positive"):
            temperature_of({"calibration": {"temperature": bad}})
