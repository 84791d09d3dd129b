"""The merged OpenAPI document at `/api/openapi.json` and Swagger UI at `/api/docs`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import FastAPI

from callcenter_common.bus import Bus, RabbitBus
from callcenter_common.catalog import SERVICES
from callcenter_common.settings import PlatformSettings
from gateway.openapi import merge_openapi
from reporting.config import ReportingSettings
from reporting.main import create_app as create_reporting

from .gatewaykit import Embedded


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_merged_openapi_prefixes_paths_renames_schemas_and_lists_unavailable(
    embedded: Embedded,
    echo_service: Callable[[Bus], FastAPI],
    bus: RabbitBus,
    new_pg_database: Callable[[], Awaitable[str]],
    platform_settings: PlatformSettings,
) -> None:
    reporting = create_reporting(
        ReportingSettings(database_url=await new_pg_database(), platform=platform_settings), bus=bus
    )
    async with embedded({"patient": echo_service(bus), "reporting": reporting}) as (_, client):
        r = await client.get("/api/openapi.json")
        docs = await client.get("/api/docs")
    assert r.status_code == 200
    doc = json.loads(r.content)

    assert {"/api/patient/appointments", "/api/patient/me", "/api/reporting/healthz", "/api/status"} <= set(
        doc["paths"]
    )
    assert not any(p.startswith("/appointments") or p == "/healthz/" for p in doc["paths"])
    create = doc["paths"]["/api/patient/appointments"]["post"]
    assert create["tags"] == ["patient"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/Patient_AppointmentCreate"
    assert resolve(doc, body_ref)["properties"]["patient_id"]["type"] == "integer"
    assert "Patient_HTTPValidationError" in doc["components"]["schemas"]
    all_refs = list(refs(doc))
    assert all_refs and all(resolve(doc, ref) is not None for ref in all_refs)  # every ref lands somewhere
    assert all(name.split("_", 1)[0] in {"Patient", "Reporting", "Gateway"} for name in doc["components"]["schemas"])

    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op]
    assert len(operation_ids) == len(set(operation_ids))
    assert {"patient", "reporting", "gateway"} <= {t["name"] for t in doc["tags"]}
    assert doc["x-unavailable"] == sorted(s.name for s in SERVICES if s.name not in {"patient", "reporting"})

    assert docs.status_code == 200
    assert "swagger-ui" in docs.text and "/api/openapi.json" in docs.text


def test_merge_renames_every_kind_of_reference() -> None:
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "agent-state", "version": "1"},
        "security": [{"bearer": []}],
        "paths": {
            "/users": {
                "get": {
                    "operationId": "list_users",
                    "tags": ["users"],
                    "responses": {"200": {"$ref": "#/components/responses/Users"}},
                },
                "post": {"operationId": "create_user", "security": [], "responses": {}},
            },
            "/users/{id}": {"$ref": "#/paths/~1users"},
        },
        "components": {
            "schemas": {
                "Agent": {"type": "object"},
                "Lead": {"type": "object"},
                "Person": {
                    "oneOf": [{"$ref": "#/components/schemas/Agent"}, {"$ref": "#/components/schemas/Lead"}],
                    "discriminator": {"propertyName": "kind", "mapping": {"agent": "#/components/schemas/Agent"}},
                },
            },
            "responses": {"Users": {"description": "users", "content": {}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    merged = merge_openapi([("agent-state", spec)], unavailable=["acd"])

    person = merged["components"]["schemas"]["AgentState_Person"]
    assert [s["$ref"] for s in person["oneOf"]] == [
        "#/components/schemas/AgentState_Agent",
        "#/components/schemas/AgentState_Lead",
    ]
    assert person["discriminator"]["mapping"] == {"agent": "#/components/schemas/AgentState_Agent"}
    users = merged["paths"]["/api/agent-state/users"]
    assert users["get"]["responses"]["200"]["$ref"] == "#/components/responses/AgentState_Users"
    assert users["get"]["operationId"] == "agent_state_list_users"
    assert users["get"]["tags"] == ["agent-state"]
    assert users["get"]["security"] == [{"AgentState_bearer": []}]  # the document's default, renamed
    assert users["post"]["security"] == []  # explicitly open stays open
    assert merged["paths"]["/api/agent-state/users/{id}"]["$ref"] == "#/paths/~1api~1agent-state~1users"
    assert "AgentState_bearer" in merged["components"]["securitySchemes"]
    assert merged["x-unavailable"] == ["acd"]
    assert spec["components"]["schemas"]["Person"]["oneOf"][0]["$ref"] == "#/components/schemas/Agent"  # untouched
