"""The servicer's constructor names every collaborator its RPC mixins read, so a collaborator a
new mixin declares cannot be left out of the wiring unnoticed until its first call."""

from __future__ import annotations

import inspect

from crm_profile.api.profile_servicer import ProfileServicer


def declared_collaborators() -> set[str]:
    """What the mixins read, profile's own and the kit's (the Operation RPCs): their class-level
    `_name: Type` annotations."""
    return {name.removeprefix("_") for mixin in ProfileServicer.__mro__
            if mixin.__module__.startswith(("crm_profile.api.", "crmkit."))
            for name in vars(mixin).get("__annotations__", {}) if name.startswith("_")}


def test_the_constructor_takes_each_collaborator_the_mixins_read_by_name() -> None:
    parameters = inspect.signature(ProfileServicer.__init__).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == declared_collaborators()


def test_each_collaborator_lands_on_the_attribute_its_mixin_reads() -> None:
    parts = {name: object() for name in declared_collaborators()}
    servicer = ProfileServicer(**parts)  # type: ignore[arg-type]
    for name, part in parts.items():
        assert getattr(servicer, f"_{name}") is part, name
