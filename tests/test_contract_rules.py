"""Rules every service's contract keeps, read from the generated descriptors, so that the five
contracts cannot drift apart again: idempotency on every mutating RPC, pagination on every
List, one shape for the operation RPCs, one definition per enum, and one documented answer for
an expired change-feed cursor."""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor, MethodDescriptor

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("profile", "segment", "campaign", "feedback", "risk")
OPERATION_RPCS = ("GetOperation", "ListOperations", "CancelOperation", "WatchOperation")

# Verbs that only read: everything else changes state and must be safe to retry.
READ_VERBS = ("Get", "List", "Watch", "Lookup", "Validate", "Preview", "Find", "Verify", "Classify", "Check",
              "Export", "Explain")

# Verbs that change a resource the caller has read: its etag makes a retry safe (the second
# attempt fails ABORTED instead of applying twice). Set* replaces values, like Update*.
ETAG_VERBS = ("Update", "Delete", "Set")

# Mutating RPCs that carry neither `request_id` nor `etag`, each with the reason a retry is safe.
NOT_KEYED = {
    # Each event carries its own `event_id`; ingest deduplicates on it, so a retried batch
    # stores every event once without a request-level key.
    "crm.profile.v1.ProfileService.IngestEvents",
    # A resent upload only stores another copy under a new upload name and changes no customer
    # data; the ImportCustomers that uses an upload carries the request_id.
    "crm.profile.v1.ProfileService.UploadImportFile",
    # Confirming fields is naturally idempotent: a retry only moves the confirmation time.
    "crm.profile.v1.ProfileService.ConfirmFields",
    # Cancelling is idempotent by itself: a repeated cancel of a cancelled operation returns it.
    *(f"crm.{s}.v1.{s.capitalize()}Service.CancelOperation"
      for s in ("profile", "segment", "campaign", "feedback", "risk")),
}

# Enums still defined in two packages, each a known debt (issue 8) to move to crm.common.v1; the
# test fails when a new duplicate appears and when one of these is resolved without leaving
# the list.
KNOWN_DUPLICATE_ENUMS = {
    # Contact channels (campaign) and intake channels (feedback) differ in values today.
    "Channel": ["crm.campaign.v1", "crm.feedback.v1"],
    # Same values and numbers on both sides; risk mirrors profile's questionnaire result.
    "RiskTolerance": ["crm.profile.v1", "crm.risk.v1"],
}


def _file(service: str) -> FileDescriptor:
    return importlib.import_module(f"crm.{service}.v1.{service}_service_pb2").DESCRIPTOR


def _methods() -> list[MethodDescriptor]:
    return [m for s in SERVICES for svc in _file(s).services_by_name.values() for m in svc.methods]


def _verb(method: MethodDescriptor) -> str:
    return re.match(r"[A-Z][a-z]+", method.name).group(0)  # type: ignore[union-attr]


def _is_mutating(method: MethodDescriptor) -> bool:
    return _verb(method) not in READ_VERBS


def _has(message: Descriptor, name: str, type_: int = FieldDescriptor.TYPE_STRING) -> bool:
    field = message.fields_by_name.get(name)
    return field is not None and field.type == type_ and not field.is_repeated


def _carries_etag(request: Descriptor) -> bool:
    """The request has `etag`, or its resource (Update's first message field) has one."""
    if _has(request, "etag"):
        return True
    return any(f.message_type is not None and _has(f.message_type, "etag") for f in request.fields
               if f.type == FieldDescriptor.TYPE_MESSAGE and not f.is_repeated)


def _idempotency_failures() -> list[str]:
    failures = []
    for method in _methods():
        if not _is_mutating(method) or method.full_name in NOT_KEYED:
            continue
        request = method.input_type
        if _verb(method) in ETAG_VERBS and _carries_etag(request):
            continue
        if not _has(request, "request_id"):
            failures.append(f"{method.full_name}: {request.name} has no string request_id"
                            + (" or etag" if _verb(method) in ETAG_VERBS else ""))
    return failures


def test_every_mutating_rpc_is_keyed_by_request_id_or_etag() -> None:
    assert _idempotency_failures() == []


def test_the_exceptions_are_real_mutating_rpcs() -> None:
    names = {m.full_name for m in _methods()}
    assert names >= NOT_KEYED, sorted(NOT_KEYED - names)


def test_every_list_rpc_pages() -> None:
    failures = []
    for method in _methods():
        if _verb(method) != "List":
            continue
        request, response = method.input_type, method.output_type
        if not _has(request, "page_size", FieldDescriptor.TYPE_INT32) or not _has(request, "page_token"):
            failures.append(f"{method.full_name}: {request.name} needs int32 page_size and string page_token")
        if not _has(response, "next_page_token"):
            failures.append(f"{method.full_name}: {response.name} needs string next_page_token")
    assert failures == []


def _shape(message: Descriptor) -> dict[str, tuple[int, int, bool, str]]:
    return {f.name: (f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else
                     f.enum_type.full_name if f.enum_type else "") for f in message.fields}


@pytest.mark.parametrize("rpc", OPERATION_RPCS)
def test_operation_rpcs_share_one_request_shape(rpc: str) -> None:
    shapes = {}
    for service in SERVICES:
        for svc in _file(service).services_by_name.values():
            if rpc in svc.methods_by_name:
                shapes[service] = _shape(svc.methods_by_name[rpc].input_type)
    assert len(shapes) >= 2
    first = next(iter(shapes.values()))
    assert {s: shape for s, shape in shapes.items() if shape != first} == {}, f"{rpc} differs from {first}"


def test_no_enum_is_defined_twice() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    pending = [_file(s) for s in SERVICES]
    seen: set[str] = set()
    while pending:
        file = pending.pop()
        if file.name in seen or not file.package.startswith("crm."):
            continue
        seen.add(file.name)
        pending.extend(file.dependencies)
        for enum in file.enum_types_by_name.values():
            packages[enum.name].add(file.package)
        for message in file.message_types_by_name.values():
            stack = [message]
            while stack:
                current = stack.pop()
                stack.extend(current.nested_types)
                for enum in current.enum_types:
                    packages[enum.name].add(file.package)
    assert {name: sorted(p) for name, p in packages.items() if len(p) > 1} == KNOWN_DUPLICATE_ENUMS


def _service_comments(tmp_path: Path) -> dict[str, str]:
    """RPC full name -> its leading comment; the generated modules drop comments, so the contract
    is compiled once more with source info, from the same protos and includes as `make gen`."""
    import grpc_tools
    from grpc_tools import protoc

    out = tmp_path / "contracts.binpb"
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    sources = [f"crm/{s}/v1/{s}_service.proto" for s in SERVICES]
    assert protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"-I{ROOT / 'build' / 'googleapis'}", f"-I{well_known}",
                        "--include_source_info", f"--descriptor_set_out={out}", *sources]) == 0
    comments = {}
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        for location in file.source_code_info.location:
            if len(location.path) == 4 and location.path[0] == 6 and location.path[2] == 2:
                service = file.service[location.path[1]]
                method = service.method[location.path[3]]
                comments[f"{file.package}.{service.name}.{method.name}"] = location.leading_comments
    return comments


def test_every_change_feed_names_its_expired_cursor_error(tmp_path: Path) -> None:
    """The kit's feed answers an expired cursor with FAILED_PRECONDITION, reason CURSOR_EXPIRED."""
    comments = _service_comments(tmp_path)
    feeds = [m.full_name for m in _methods() if m.name == "WatchChanges"]
    assert len(feeds) >= 4
    named = re.compile(r"FAILED_PRECONDITION\W+(?:\w+\W+){0,3}CURSOR_EXPIRED")
    failures = [name for name in feeds if not named.search(" ".join(comments[name].split()))]
    assert failures == []
