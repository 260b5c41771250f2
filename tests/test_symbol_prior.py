"""The symbol prior the pipeline applies to the classifier's probabilities (workers/pipeline/symbol_prior.py)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workers.pipeline import symbol_prior
from workers.pipeline.decoder import Edge, decode
from workers.pipeline.symbols import CLASS_INDEX, CLASSES, DIGITS

rows = arrays(np.float64, (3, len(CLASSES)), elements=st.floats(0.0, 1.0)).filter(lambda a: (a.sum(axis=1) > 1e-6).all())


def test_the_prior_is_benford_over_digits_two_thirds_of_symbols_and_even_over_the_rest():
    prior = dict(zip(CLASSES, symbol_prior.class_prior()))
    assert abs(sum(prior.values()) - 1) < 1e-9
    assert abs(sum(prior[d] for d in DIGITS) - 2 / 3) < 1e-9
    leading = [prior[d] for d in "123456789"]
    assert leading == sorted(leading, reverse=True) and prior["1"] > 2.5 * prior["0"]  # no number starts with 0
    assert len({round(prior[c], 12) for c in "+-*()="}) == 1


@given(rows)
def test_the_posterior_keeps_each_rows_mass(probabilities):
    # A row of a model with a not-one-symbol output sums to the chance that the crop is one
    # symbol; the prior shares that chance out among the symbols and leaves it as it is.
    posterior = symbol_prior.posterior(probabilities)
    assert posterior.shape == probabilities.shape and (posterior >= 0).all()
    assert np.allclose(posterior.sum(axis=1), probabilities.sum(axis=1), rtol=1e-4, atol=1e-6)


@given(rows)
def test_a_clear_winner_stays_the_winner(probabilities):
    """The prior only moves a decision whose odds are within the prior's own range."""
    weights = symbol_prior.class_prior()
    spread = weights.max() / weights.min()
    for row, after in zip(probabilities, symbol_prior.posterior(probabilities)):
        first, second = np.sort(row)[::-1][:2]
        if first > spread * second * 1.001:
            assert int(np.argmax(after)) == int(np.argmax(row))


def test_a_stroke_that_is_as_much_a_one_as_a_parenthesis_is_read_as_a_one():
    even = np.zeros((1, len(CLASSES)))
    even[0, CLASS_INDEX["1"]] = even[0, CLASS_INDEX["("]] = 0.5
    posterior = symbol_prior.posterior(even)[0]
    assert posterior[CLASS_INDEX["1"]] > 0.65 and CLASSES[int(np.argmax(posterior))] == "1"


def _read(rows: list[dict[str, float]]) -> str:
    """Decode a chain of crops whose model probabilities are ``rows``, through the posterior."""
    model = np.zeros((len(rows), len(CLASSES)))
    for index, row in enumerate(rows):
        for symbol, probability in row.items():
            model[index, CLASS_INDEX[symbol]] = probability
    after = symbol_prior.posterior(model)
    columns = [tuple((CLASSES[c], float(row[c])) for c in np.argsort(row)[::-1][:4]) for row in after]
    return decode([Edge(i, i + 1, column) for i, column in enumerate(columns)], len(columns) + 1).text


def test_a_digit_within_a_number_is_not_pulled_towards_a_one():
    # Benford's law favours a 1 strongly only as a number's first digit (30% against 6% for a
    # 7); as its second digit hardly (11% against 9%), and later not at all. A stroke that the
    # model finds a 7 at 60% is read as a 1 where it leads a number, and as a 7 within one.
    stroke = {"1": 0.4, "7": 0.6}
    assert _read([stroke]) == "1"
    assert _read([stroke, {"+": 1.0}, {"2": 1.0}]) == "1+2"
    assert _read([{"2": 1.0}, stroke]) == "27"
    assert _read([{"2": 1.0}, {"7": 1.0}, stroke]) == "277"


def test_the_later_digit_cost_is_benfords_second_digit_law_then_uniform():
    def placed(before_previous: str) -> dict[str, float]:
        """Each digit's share after the posterior's position-blind weight and the cost for its place."""
        return {d: np.exp(symbol_prior.later_digit_cost(before_previous, "3", d)) * symbol_prior._digit_prior(int(d)) / symbol_prior._DIGIT_TOTAL
                for d in DIGITS}

    second, later = placed(""), placed("3")
    assert abs(sum(second.values()) - 1) < 1e-9 and abs(sum(later.values()) - 1) < 1e-9
    assert list(second.values()) == sorted(second.values(), reverse=True) and round(second["0"], 3) == 0.120
    assert all(abs(p - 0.1) < 1e-12 for p in later.values())
    assert symbol_prior.later_digit_cost("", "", "7") == symbol_prior.later_digit_cost("+", "(", "7") == 0.0
    assert symbol_prior.later_digit_cost("", "3", "+") == 0.0
