"""UploadImportFile through the in-process server, on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from crm.profile.v1 import import_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, row_counter, running_service

ADMIN = bearer(Role.ADMIN, subject="loader")
DATA = b"id,name\n1,Li Wei\n2,Wang Fang\n" * 50


async def only(*requests: import_pb2.UploadImportFileRequest) -> AsyncIterator[import_pb2.UploadImportFileRequest]:
    for request in requests:
        yield request


async def test_an_upload_is_stored_and_described(importer, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("import_upload_chunk")
    upload = await importer.upload(DATA, chunk=100, file_name="branch-7.csv")
    assert upload.name == f"importUploads/{upload.upload_id}"
    assert (upload.file_name, upload.size_bytes, upload.sha256) == ("branch-7.csv", len(DATA),
                                                                    hashlib.sha256(DATA).hexdigest())
    assert upload.format == import_pb2.IMPORT_FILE_FORMAT_CSV
    assert 86_000 <= upload.expire_time.seconds - upload.create_time.seconds <= 86_400
    assert await count("import_upload_chunk") == before + 1  # small chunks are stored as one


async def test_the_first_message_must_be_the_header(profile, importer, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("import_upload")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(importer.messages(None, DATA), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in field_violations(raised.value)
    head = importer.header(DATA)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(only(import_pb2.UploadImportFileRequest(header=head),
                                            import_pb2.UploadImportFileRequest(header=head)), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chunk" in field_violations(raised.value)
    assert await count("import_upload") == before


@pytest.mark.parametrize(("sent", "field"), [
    (DATA[:-1], "header.size_bytes"),  # fewer bytes than declared
    (DATA + b"x", "header.size_bytes"),  # more
    (DATA.replace(b"Li", b"Lu"), "header.sha256"),  # same size, other content
])
async def test_bytes_that_do_not_match_the_header_keep_nothing(sent, field, profile, importer, profile_service) -> None:
    count = row_counter(profile_service)
    before = (await count("import_upload"), await count("import_upload_chunk"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(importer.messages(importer.header(DATA), sent, 100), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(raised.value)
    assert (await count("import_upload"), await count("import_upload_chunk")) == before


async def test_a_bad_header_names_every_field(profile, importer) -> None:
    head = import_pb2.UploadImportFileHeader(file_name="", format=0, size_bytes=0, sha256="nope",
                                             request_id="not-a-uuid")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(importer.messages(head, DATA), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(raised.value)) >= {"header.request_id"}
    head.request_id = ""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(importer.messages(head, DATA), metadata=ADMIN)
    assert set(field_violations(raised.value)) == {"header.file_name", "header.format", "header.size_bytes",
                                                   "header.sha256"}


async def test_a_file_over_the_limit_is_resource_exhausted(profile, importer) -> None:
    head = importer.header(DATA, size_bytes=10 * 1024**3 + 1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.UploadImportFile(importer.messages(head, b""), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(raised.value) == "UPLOAD_TOO_LARGE"


async def test_a_deployment_limit_and_a_full_upload_area_are_resource_exhausted(
        profile_database, profile_service, importer) -> None:
    _, runtime = profile_service
    secrets = runtime.settings
    async with runtime.db.raw() as connection:
        used = await connection.fetchval(
            "SELECT coalesce(sum(size_bytes), 0) FROM import_upload WHERE expire_time >= now()")
    async with running_service(
            SPEC, database_url=profile_database, encryption_keys=secrets.encryption_keys.get_secret_value(),
            active_key_id=secrets.active_key_id, blind_index_key=secrets.blind_index_key.get_secret_value(),
            import_max_upload_bytes=len(DATA), import_upload_area_bytes=used + len(DATA) + 10) as (channel, _):
        small = profile_service_pb2_grpc.ProfileServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await small.UploadImportFile(importer.messages(importer.header(DATA + b"x"), DATA + b"x"), metadata=ADMIN)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(raised.value) == "UPLOAD_TOO_LARGE"
        await small.UploadImportFile(importer.messages(importer.header(DATA), DATA), metadata=ADMIN)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await small.UploadImportFile(importer.messages(importer.header(DATA), DATA), metadata=ADMIN)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(raised.value) == "UPLOAD_AREA_FULL"


async def test_a_retried_upload_returns_the_first_and_stores_no_second_copy(importer, profile_service) -> None:
    count = row_counter(profile_service)
    request_id = str(uuid.uuid4())
    first = await importer.upload(DATA, request_id=request_id)
    uploads = await count("import_upload")
    again = await importer.upload(DATA, request_id=request_id)
    assert again == first
    assert await count("import_upload") == uploads


async def test_reusing_a_request_id_for_other_content_is_invalid(profile, importer) -> None:
    request_id = str(uuid.uuid4())
    await importer.upload(DATA, request_id=request_id)
    other = DATA + b"3,Zhao Lei\n"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.upload(other, request_id=request_id)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.request_id" in field_violations(raised.value)


async def test_a_request_id_is_bound_to_the_whole_header_not_only_the_content(importer) -> None:
    # A client stream has no one request: the header (name, format, size, digest) is what the
    # key fingerprints, so the same bytes declared under another file name are another upload.
    request_id = str(uuid.uuid4())
    await importer.upload(DATA, request_id=request_id)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.upload(DATA, request_id=request_id, file_name="renamed.csv")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == "REQUEST_ID_REUSED"
    assert "header.request_id" in field_violations(raised.value)


@pytest.mark.parametrize("role", [Role.ANALYST, Role.RELATIONSHIP_MANAGER, Role.CHANNEL_APP])
async def test_only_the_platform_may_upload(role, importer, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("import_upload")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.upload(DATA, metadata=bearer(role))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await count("import_upload") == before


async def test_a_service_principal_may_upload(importer) -> None:
    upload = await importer.upload(DATA, metadata=bearer(Role.SERVICE, subject="etl"))
    assert upload.size_bytes == len(DATA)


async def test_housekeeping_drops_expired_uploads_and_orphaned_scratch_tables(importer, profile_service) -> None:
    from crm_profile.imports import repository

    upload = await importer.upload(DATA)
    orphan = f"import_work_{uuid.uuid4().hex}"
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        await connection.execute(f"CREATE UNLOGGED TABLE {orphan} (line bigint)")
        await connection.execute("UPDATE import_upload SET expire_time = now() - interval '1 minute'"
                                 " WHERE upload_id = $1", uuid.UUID(upload.upload_id))
    async with runtime.db.unit_of_work() as uow:  # what a housekeeping round does
        assert orphan in await repository.leftover_scratch(uow)
        await repository.drop_tables(uow, await repository.leftover_scratch(uow))
        assert await repository.purge_expired_uploads(uow) >= 1
    async with runtime.db.raw() as connection:
        assert await connection.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = $1", orphan) == 0
        assert await connection.fetchval("SELECT count(*) FROM import_upload_chunk WHERE upload_id = $1",
                                         uuid.UUID(upload.upload_id)) == 0
