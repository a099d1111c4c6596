"""The one update-mask rule (AIP-134) every service's Update RPCs use."""

from __future__ import annotations

import pytest

from crmkit.errors import InvalidArgument
from crmkit.validation import Violations


def problems(paths: list[str]) -> list[tuple[str, str]]:
    v = Violations()
    v.update_mask(paths, {"display_name", "description"})
    with pytest.raises(InvalidArgument) as raised:
        v.raise_if_any()
    return [(f.field, f.description) for f in raised.value.violations]


def test_an_empty_mask_is_refused() -> None:
    assert problems([]) == [("update_mask", "is required: name the fields to update")]


def test_a_path_that_cannot_be_updated_names_what_can() -> None:
    assert problems(["display_name", "state"]) == [
        ("update_mask", "'state' cannot be updated; updatable: description, display_name")]


def test_accepts_admits_open_ended_paths() -> None:
    v = Violations()
    v.update_mask(["attributes.tier"], {"display_name"}, accepts=lambda p: p.startswith("attributes."))
    assert not v
