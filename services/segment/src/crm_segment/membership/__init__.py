"""Segment membership: preview a rule over the feature read model, materialise a segment's
members with their history (entered / left) as an operation, and read both back."""
