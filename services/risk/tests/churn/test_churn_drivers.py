"""Drivers' contributions: skipping the customers whose value already is the reference's gives
exactly what substituting every feature of every customer gives."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from crm_risk.churn import drivers
from crm_risk.churn.model import Encoding, FeatureKind, FeatureSpec


def every_substitution(predict, values, ref):  # type: ignore[no-untyped-def]
    """The definition, spelt out: every customer predicted again with each feature at the reference."""
    base = predict(values)
    contributions = np.zeros((len(values), len(ref.columns)))
    for f, (columns, replacement) in enumerate(zip(ref.columns, ref.values, strict=True)):
        substituted = values.copy()
        substituted[:, list(columns)] = replacement
        contributions[:, f] = base - predict(substituted)
    return base, contributions


def test_contributions_are_those_of_substituting_every_feature() -> None:
    rng = np.random.default_rng(3)
    rows = 600
    region = rng.choice(3, size=rows, p=[0.6, 0.25, 0.15])
    products = rng.choice([1.0, 2.0, 3.0], size=rows, p=[0.6, 0.3, 0.1])
    age = rng.integers(18, 90, size=rows).astype(float)
    balance = np.where(rng.random(rows) < 0.1, np.nan, rng.lognormal(10, 1, size=rows))
    values = np.column_stack([age, products, balance, np.eye(3)[region]])
    labels = (age / 90 + (region == 1) * 0.4 + rng.random(rows) * 0.5 > 0.9).astype(int)
    encoding = Encoding(features=(FeatureSpec("age_years"), FeatureSpec("product_count"),
                                  FeatureSpec("account_balance"), FeatureSpec("region", FeatureKind.CATEGORICAL)),
                        categories=(("DE", "ES", "FR"),),
                        columns=("age_years", "product_count", "account_balance", "region=DE", "region=ES",
                                 "region=FR"))
    model = HistGradientBoostingClassifier(max_iter=30, random_state=1).fit(values, labels)

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict_proba(x)[:, 1]

    ref = drivers.reference(encoding, values)
    # Many customers already hold the reference's product count and region.
    assert (products == ref.values[1][0]).mean() > 0.4
    assert (values[:, 3:6] == np.asarray(ref.values[3])).all(axis=1).mean() > 0.4
    base, contributions = drivers.contributions(predict, values, ref)
    expected_base, expected = every_substitution(predict, values, ref)
    assert np.array_equal(base, expected_base)
    assert np.array_equal(contributions, expected)
    assert contributions.shape == (rows, 4) and np.count_nonzero(contributions) > rows


def test_one_customer_at_the_reference_everywhere_contributes_nothing() -> None:
    encoding = Encoding(features=(FeatureSpec("age_years"),), categories=(), columns=("age_years",))
    values = np.asarray([[30.0], [40.0], [50.0]])
    ref = drivers.reference(encoding, values)
    base, contributions = drivers.contributions(lambda x: x[:, 0] / 100, values, ref)
    assert base.tolist() == [0.3, 0.4, 0.5]
    assert contributions[:, 0].tolist() == [0.3 - 0.4, 0.0, 0.5 - 0.4]
