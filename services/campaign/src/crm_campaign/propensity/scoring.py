"""Scoring customers with a registered propensity model: no I/O, run in a thread by the caller.

A prospective contact is described to the model as training saw past ones: the channel it would
use, the month and weekday of `at` (the build's or answer's time, and so the slot's load), and
the customer's features from profile (`customer_feature`). What only a real contact knows
(attempt number, days since and outcome of the previous one, the context recorded at contact
time such as the economy then) is unknown now and given as missing: the booster routes missing
values where it learned to, or, for a feature never missing in training, to the larger child,
so a model leaning on such features scores on less than it was measured with.

A customer campaign holds no features of, or who lacks one of the `customer.*` features the
model reads, is not scored: the caller falls back to the offer's observed response rate. So is
every customer when the model reads no customer feature at all, since it would then score only
the calendar and the channel, not the customer.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from crm_campaign.audience.scoring import ANY_CHANNEL
from crm_campaign.propensity.model import LatestVersion, TrainingRow
from crm_campaign.propensity.rules import Encoding
from crmkit.errors import FailedPrecondition

CUSTOMER_PREFIX = "customer."

CustomerFeatures = Mapping[str, float | str | bool]


class ArtifactMismatch(FailedPrecondition):
    """The stored artifact is not the one registered (its SHA-256 differs)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: the stored model does not match its registered SHA-256; refusing to load it",
                         reason="ARTIFACT_MISMATCH", metadata={"propensity_model": name})


@dataclass(frozen=True)
class Scorer:
    """A verified, loaded model version."""

    version: LatestVersion
    encoding: Encoding
    model: Any

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def reads_channel(self) -> bool:
        return "channel" in self.encoding.features

    @property
    def customer_features(self) -> tuple[str, ...]:
        return tuple(f.removeprefix(CUSTOMER_PREFIX) for f in self.encoding.features if f.startswith(CUSTOMER_PREFIX))


def load(version: LatestVersion, artifact: bytes) -> Scorer:
    """The model of `version`; ArtifactMismatch when the bytes are not the registered ones (checked
    before they are unpickled)."""
    if hashlib.sha256(artifact).hexdigest() != version.artifact_sha256:
        raise ArtifactMismatch(version.name)
    stored = pickle.loads(artifact)  # noqa: S301 - checked against the registry's hash above
    return Scorer(version=version, encoding=stored["encoding"], model=stored["model"])


def scorable(scorer: Scorer, features: CustomerFeatures | None) -> bool:
    """Whether the customer has every customer feature the model reads (and it reads some)."""
    wanted = scorer.customer_features
    return bool(wanted) and features is not None and all(name in features for name in wanted)


FeatureKey = tuple[float | str | bool, ...]


def feature_key(scorer: Scorer, features: CustomerFeatures) -> FeatureKey:
    """What the model reads of a scorable customer: their values of its customer features."""
    return tuple(features[name] for name in scorer.customer_features)


def feature_keys(scorer: Scorer, customers: Mapping[str, CustomerFeatures]) -> dict[str, FeatureKey]:
    """The feature key of each scorable customer (the others are left out)."""
    names = scorer.customer_features
    if not names:
        return {}
    keys: dict[str, FeatureKey] = {}
    for customer_id, features in customers.items():
        try:
            keys[customer_id] = tuple(features[name] for name in names)
        except KeyError:
            continue
    return keys


def probabilities(scorer: Scorer, customers: Mapping[str, CustomerFeatures], channels: Sequence[int], *,
                  at: datetime) -> dict[str, dict[int, float]]:
    """Calibrated probabilities of accepting, by customer, by channel. A model that does not read
    the channel gives one probability, under channel 0. Customers that are not `scorable` are
    left out. Customers the model cannot tell apart (the same values of its customer features)
    share one row of the single predict over them all, and one result."""
    keys = feature_keys(scorer, customers)
    by_key = by_feature_key(scorer, list(dict.fromkeys(keys.values())), channels, at=at)
    return {customer_id: by_key[key] for customer_id, key in keys.items()}


def by_feature_key(scorer: Scorer, keys: Sequence[FeatureKey], channels: Sequence[int], *,
                   at: datetime) -> dict[FeatureKey, dict[int, float]]:
    """Probabilities by channel for each distinct feature key, in one predict."""
    per_key = tuple(dict.fromkeys(int(c) for c in channels)) if scorer.reads_channel else (ANY_CHANNEL,)
    if not keys or not per_key:
        return {}
    names = scorer.customer_features
    fields = {"contact_month": at.month, "contact_day_of_week": at.isoweekday()}
    rows = [TrainingRow(customer_id="", accepted=False, fields={**fields, "channel": channel}, context={},
                        customer=dict(zip(names, key, strict=True)))
            for key in keys for channel in per_key]
    values = scorer.model.predict_proba(scorer.encoding.matrix(rows))[:, 1]
    grid = np.asarray(values, dtype=np.float64).reshape(len(keys), len(per_key))
    return {key: {channel: float(grid[i, j]) for j, channel in enumerate(per_key)} for i, key in enumerate(keys)}
