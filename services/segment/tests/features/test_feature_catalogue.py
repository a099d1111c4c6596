"""ListFeatures' catalogue lists what the read model now holds, with its CEL types."""

from __future__ import annotations

from crm_segment.features.tables import customer_feature
from crm_segment.segments import rules
from crm_segment.segments.model import FeatureType

READ_MODEL_FEATURES = {
    "birth_year": FeatureType.INT, "relationship_manager_id": FeatureType.STRING,
    "closed_time": FeatureType.TIMESTAMP, "marketing_channels": FeatureType.STRING_LIST,
    "do_not_contact": FeatureType.BOOL, "features_as_of": FeatureType.TIMESTAMP,
    "product_categories": FeatureType.STRING_LIST, "days_to_next_maturity": FeatureType.INT,
}


def test_the_catalogue_lists_the_read_model_features_with_their_types() -> None:
    assert {name: rules.CATALOGUE[name].type for name in READ_MODEL_FEATURES if name in rules.CATALOGUE} == \
        READ_MODEL_FEATURES


def test_every_channel_the_read_model_writes_is_an_allowed_value() -> None:
    from crm_segment.features import rules as model_rules

    assert set(model_rules.CHANNELS.values()) == set(rules.CATALOGUE["marketing_channels"].allowed_values)
    categories = set(model_rules.PRODUCT_CATEGORIES.values()) | {model_rules.PAYROLL}
    assert categories <= set(rules.CATALOGUE["product_categories"].allowed_values)
    assert "features_as_of" in customer_feature.c
