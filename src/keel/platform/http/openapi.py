"""OpenAPI post-processing, in one place, so no router can forget it: every operation
documents the error envelope (422 and ``default``), and FastAPI's own
``HTTPValidationError`` shape — which Keel never sends — disappears from the schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keel.platform.http.envelope import ErrorEnvelope
from keel.platform.ratelimit.policies import document_rate_limits
from keel.settings import Settings

_REF = "#/components/schemas/{model}"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorEnvelope")}}},
    }


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope_schema = ErrorEnvelope.model_json_schema(ref_template=_REF)
    components.update(envelope_schema.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope_schema
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)

    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses or operation.get("parameters") or operation.get("requestBody"):
                responses["422"] = _error_response(
                    "Validation failed: one `VALIDATION_ERROR` item per problem, with a dotted `field`."
                )
            if operation.get("requestBody"):
                responses.setdefault("400", _error_response("Malformed body (invalid JSON): `BAD_REQUEST`."))
            responses.setdefault("default", _error_response("Any other error, as the error envelope."))
    return schema


# Described in prose rather than as a header parameter of each POST: a fuzzer given the
# parameter (schemathesis) sends one generated key with several bodies, and the rightful
# 422 IDEMPOTENCY_KEY_REUSED then reads as "schema-valid request rejected".
IDEMPOTENCY_DESCRIPTION = """
**Idempotency.** Any POST may carry `Idempotency-Key` (1–255 printable ASCII characters).
The first response is kept per caller and key (24 h by default); a retry with the same
key and the same method, path, query and body gets it back with
`Idempotent-Replayed: true`, and the operation does not run again. The same key with
another request → 422 `IDEMPOTENCY_KEY_REUSED`; while the first still runs → 409
`IDEMPOTENCY_IN_PROGRESS` with `Retry-After`. 5xx and 429 responses are not kept.
Anonymous requests are not idempotent.
"""


def document_idempotency(schema: dict[str, Any]) -> dict[str, Any]:
    info = schema.setdefault("info", {})
    info["description"] = info.get("description", "") + IDEMPOTENCY_DESCRIPTION
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_errors(document_idempotency(generate()))
            app.openapi_schema = document_rate_limits(schema, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
