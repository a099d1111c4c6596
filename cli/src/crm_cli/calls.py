"""What every command that calls a service needs: its address and the caller's bearer token."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc

from crm_cli import output, workspace
from crm_cli.platform import LOCAL_HOST, PlatformError, component, resolve_port
from crm_cli.tokens import NoSecret, caller_token, jwt_secret, mint
from crmkit.auth import Role

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")
S = TypeVar("S")


def service_target(service: str) -> str:
    """`127.0.0.1:<port>` of a service, from CRM_<SERVICE>_PORT or its default port."""
    try:
        return f"{LOCAL_HOST}:{resolve_port(component(service), os.environ)}"
    except PlatformError as exc:
        output.fail(str(exc), code=2)


def caller_metadata(data_dir: Path, *, as_subject: str | None = None, role: Role = Role.ADMIN) -> Metadata:
    """The caller's bearer token; with `as_subject`, a one-hour `role` token for that person instead
    (a second person's decision, such as approving a campaign someone else submitted)."""
    try:
        if as_subject:
            secret = jwt_secret(os.environ, workspace.DataDir(data_dir).secrets)
            token = mint(secret=secret, role=role, subject=as_subject, hours=1)
        else:
            token = caller_token(os.environ, workspace.DataDir(data_dir).secrets)
    except NoSecret as exc:
        output.fail(f"{exc}; or set CRM_TOKEN")
    return (("authorization", f"Bearer {token}"),)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's calls; a failed call is printed from its status details, exit status 1."""
    try:
        return asyncio.run(coroutine)
    except grpc.aio.AioRpcError as exc:
        output.fail(output.describe_rpc_error(exc))


def call_service(service: str, stub_type: Callable[[grpc.aio.Channel], S], target: str | None, data_dir: Path,
                 call: Callable[[S, Metadata], Awaitable[T]], *, as_subject: str | None = None,
                 role: Role = Role.ADMIN) -> T:
    """One command's calls to one service: its address (`--target`, else where `crm run` puts it),
    the caller's token (`caller_metadata`), a channel for the command's duration, and a failed
    call printed from its status details (exit status 1)."""
    metadata = caller_metadata(data_dir, as_subject=as_subject, role=role)
    address = target or service_target(service)

    async def run_call() -> T:
        async with grpc.aio.insecure_channel(address) as channel:
            return await call(stub_type(channel), metadata)

    return run(run_call())
