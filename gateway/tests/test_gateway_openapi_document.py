"""The OpenAPI 3 document: routes, the bearer scheme, and every route's error responses."""

from __future__ import annotations

import pytest

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SECURED = [("/v1/customers/{customer_id}", "get"), ("/v1/customers", "post")]


@pytest.fixture
async def document(client) -> dict:  # type: ignore[type-arg]
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_lists_the_routes(document) -> None:
    assert document["openapi"].startswith("3.")
    assert {path: set(item) for path, item in document["paths"].items()} == {
        "/healthz": {"get"}, "/readyz": {"get"},
        "/v1/customers/{customer_id}": {"get"}, "/v1/customers": {"post"},
        "/v1/customers/{customer_id}/360": {"get"},
        "/v1/customers/{customer_id}/consents": {"get", "post"},
        "/v1/customers/{customer_id}/contact-preferences": {"get", "patch"},
        "/v1/complaints": {"get", "post"}, "/v1/complaints/{complaint_id}": {"get"},
        "/v1/segments": {"get"}, "/v1/segments/preview": {"post"},
        "/v1/segments/{segment_id}/members/{customer_id}/explanation": {"get"},
        "/v1/churn-models": {"get"},
        "/v1/campaigns": {"get"}, "/v1/campaigns/{campaign_id}/approve": {"post"},
        "/v1/campaigns/{campaign_id}/results": {"get"}, "/v1/offer-responses": {"post"},
        "/v1/customers/{customer_id}/next-best-action": {"get"},
        "/v1/customers/{customer_id}/next-best-action/responses": {"post"},
        "/v1/customers/{customer_id}/contact-history": {"get"},
        "/v1/care-tasks": {"get"}, "/v1/care-tasks/{care_task_id}/complete": {"post"},
        "/v1/customers/{customer_id}/loyalty-account": {"get"},
        "/v1/customers/{customer_id}/loyalty-account/transactions": {"get"},
        "/v1/customers/{customer_id}/loyalty-account/redemptions": {"post"},
        "/v1/rewards": {"get"},
    }


async def test_declares_the_bearer_scheme_on_every_v1_route_and_not_on_probes(document) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT from the bank's identity provider with the platform's `roles` claim.",
    }
    for path, method in SECURED:
        assert document["paths"][path][method]["security"] == [{"bearerAuth": []}]
    for probe in ("/healthz", "/readyz"):
        assert "security" not in document["paths"][probe]["get"]


@pytest.mark.parametrize(("path", "method", "own"), [
    ("/v1/customers/{customer_id}", "get", {"400", "404"}),
    ("/v1/customers", "post", {"400", "409", "413"}),
])
async def test_documents_each_error_response_as_a_problem(document, path, method, own) -> None:
    responses = document["paths"][path][method]["responses"]
    errors = {code for code in responses if code >= "400"}
    assert errors == own | {"401", "403", "429", "500", "502", "503", "504"}
    for code in errors:
        assert responses[code]["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}
        assert responses[code]["description"]
    assert "422" not in responses


async def test_describes_the_problem_and_customer_schemas(document) -> None:
    schemas = document["components"]["schemas"]
    assert {"type", "title", "status", "detail", "invalid_params", "reason"} <= set(schemas["Problem"]["properties"])
    assert "HTTPValidationError" not in schemas
    customer = schemas["Customer"]
    assert customer["additionalProperties"] is False
    assert {"customer_id", "full_name", "mobile_phone", "id_document"} <= set(customer["properties"])
    post = document["paths"]["/v1/customers"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/CustomerInput"
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Customer"}
    header = next(p for p in post["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key"


async def test_roles_are_listed_in_each_route_description(document) -> None:
    get = document["paths"]["/v1/customers/{customer_id}"]["get"]["description"]
    assert "`channel_app`" in get and "`marketer`" not in get
    post = document["paths"]["/v1/customers"]["post"]["description"]
    assert "`relationship_manager`" in post and "`analyst`" not in post


async def test_every_post_takes_an_idempotency_key(document) -> None:
    posts = [item["post"] for item in document["paths"].values() if "post" in item]
    assert posts
    for post in posts:
        header = next(p for p in post["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key")
        schema = header["schema"] if header["required"] else header["schema"]["anyOf"][0]
        assert (schema["type"], schema["format"]) == ("string", "uuid")
        assert "REQUEST_ID_REUSED" in header["description"]


async def test_filing_a_complaint_requires_the_idempotency_key_as_the_service_does(document) -> None:
    post = document["paths"]["/v1/complaints"]["post"]
    header = next(p for p in post["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key")
    assert header["required"] is True and "Required on this route." in header["description"]
    customers = document["paths"]["/v1/customers"]["post"]
    assert next(p for p in customers["parameters"] if p["name"] == "Idempotency-Key")["required"] is False


async def test_every_v1_operation_is_secured_limited_and_answers_problems(document) -> None:
    for path, item in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["security"] == [{"bearerAuth": []}], where
            assert operation["x-rate-limit"]["class"] == ("read" if method == "get" else "write"), where
            assert "Roles: `" in operation["description"], where
            responses = operation["responses"]
            for code in ("401", "403", "429", "500", "502", "503", "504"):
                assert responses[code]["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, where
            assert "422" not in responses, where
            if any(p["in"] == "query" and p["name"] == "page_token" for p in operation.get("parameters", [])):
                ok = next(r for c, r in responses.items() if c.startswith("2"))
                schema = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                assert "next_page_token" in document["components"]["schemas"][schema]["properties"], where
