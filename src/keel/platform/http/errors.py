"""One error base for the whole service; one handler renders it as the envelope.

Each domain declares its own cases (subclasses) in its ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

ErrorCode = Literal[
    "VALIDATION_ERROR",
    "BAD_REQUEST",
    "AUTHENTICATION_REQUIRED",
    "INVALID_CREDENTIALS",
    "TOKEN_EXPIRED",
    "INVALID_TOKEN",
    "MFA_REQUIRED",
    "ACCOUNT_LOCKED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "NOT_ACCEPTABLE",
    "CONFLICT",
    "PRECONDITION_FAILED",
    "PRECONDITION_REQUIRED",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "IDEMPOTENCY_KEY_REUSED",
    "IDEMPOTENCY_IN_PROGRESS",
    "RATE_LIMITED",
    "QUOTA_EXCEEDED",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
]
Severity = Literal["low", "medium", "high", "critical"]

# Status codes the framework raises on its own (routing, body parsing, CORS) mapped to
# the contract's codes and a message that reveals nothing about the server.
STATUS_CODES: dict[int, tuple[ErrorCode, str]] = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    401: ("AUTHENTICATION_REQUIRED", "Authentication is required."),
    403: ("FORBIDDEN", "You do not have permission to perform this action."),
    404: ("NOT_FOUND", "The requested resource was not found."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this resource."),
    406: ("NOT_ACCEPTABLE", "No representation matches the Accept header."),
    409: ("CONFLICT", "The request conflicts with the current state of the resource."),
    412: ("PRECONDITION_FAILED", "A precondition in the request headers failed."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "This media type is not supported."),
    422: ("VALIDATION_ERROR", "The request is not valid."),
    428: ("PRECONDITION_REQUIRED", "This request must be conditional (If-Match)."),
    429: ("RATE_LIMITED", "Too many requests."),
    500: ("INTERNAL_ERROR", "An internal error occurred."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable."),
}


def describe_status(status_code: int) -> tuple[ErrorCode, str]:
    if status_code in STATUS_CODES:
        return STATUS_CODES[status_code]
    return STATUS_CODES[500] if status_code >= 500 else STATUS_CODES[400]


def severity_for(status_code: int) -> Severity:
    if status_code >= 500:
        return "critical" if status_code == 500 else "high"
    if status_code in (401, 403, 413, 415, 423, 429):
        return "medium"
    return "low"


# On a refusal made before the request body was read to its end.
CLOSE_CONNECTION: Mapping[str, str] = {"Connection": "close"}


class KeelError(Exception):
    """An expected failure with a stable code; rendered as the error envelope."""

    code: ClassVar[ErrorCode] = "INTERNAL_ERROR"
    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "An internal error occurred."
    # Most failures roll the request's transaction back. A few must keep what was
    # written before they were raised (a failed login's throttle count and audit row).
    persist_changes: ClassVar[bool] = False

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.field = field
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(KeelError):
    code = "BAD_REQUEST"
    status_code = 400
    default_message = STATUS_CODES[400][1]


class AuthenticationRequired(KeelError):
    code = "AUTHENTICATION_REQUIRED"
    status_code = 401
    default_message = STATUS_CODES[401][1]


class Forbidden(KeelError):
    code = "FORBIDDEN"
    status_code = 403
    default_message = STATUS_CODES[403][1]


class NotFound(KeelError):
    code = "NOT_FOUND"
    status_code = 404
    default_message = STATUS_CODES[404][1]


class Conflict(KeelError):
    code = "CONFLICT"
    status_code = 409
    default_message = STATUS_CODES[409][1]


class ValidationFailed(KeelError):
    """A rule that needs more than the schema (a password policy, a cross-field check)."""

    code = "VALIDATION_ERROR"
    status_code = 422
    default_message = STATUS_CODES[422][1]


class PayloadTooLarge(KeelError):
    """Raised while the body is still arriving: the answer closes the connection, or the
    server would go on reading (and discarding) the rest of it to reuse the connection."""

    code = "PAYLOAD_TOO_LARGE"
    status_code = 413
    default_message = STATUS_CODES[413][1]

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message, field=field, headers=CLOSE_CONNECTION)


class ServiceUnavailable(KeelError):
    code = "SERVICE_UNAVAILABLE"
    status_code = 503
    default_message = STATUS_CODES[503][1]


class IdempotencyKeyReused(KeelError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status_code = 422
    default_message = "This Idempotency-Key was used with a different request (method, path, query or body)."


class IdempotencyInProgress(KeelError):
    code = "IDEMPOTENCY_IN_PROGRESS"
    status_code = 409
    default_message = "A request with this Idempotency-Key is still being processed; retry later."


class IdempotencyLeaseLost(Conflict):
    default_message = (
        "This request outlived its Idempotency-Key lease and a retry took it over; "
        "its changes were rolled back."
    )
