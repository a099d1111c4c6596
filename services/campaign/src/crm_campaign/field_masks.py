"""Applying an update mask (AIP-134) to a domain dataclass whose fields mirror the proto's paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def apply_paths(current: T, changes: T, paths: Iterable[str]) -> T:
    """`current` with each named (dotted) path taken from `changes`."""
    merged = current
    for path in paths:
        merged = _replace_path(merged, changes, path.split("."))
    return merged


def _replace_path(current: Any, changes: Any, parts: list[str]) -> Any:
    head, rest = parts[0], parts[1:]
    new_value = getattr(changes, head)
    if rest:
        inner = getattr(current, head)
        # A nested path into a value the resource does not have yet starts from the request's.
        new_value = new_value if inner is None or new_value is None else _replace_path(inner, new_value, rest)
    return dataclasses.replace(current, **{head: new_value})
