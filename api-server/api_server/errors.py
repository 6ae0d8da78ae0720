"""Kubernetes API errors, each one rendered as the ``Status`` object clients parse.

kubectl and the ``kubernetes`` client decide what to do from ``code`` and ``reason`` (404 makes
``apply`` create, 409 makes a controller re-read, 410 makes a watcher re-list), so every failure the
server can report is a named class here carrying both::

    ApiError
    ├── BadRequest            400  malformed body, unknown field under fieldValidation=Strict
    ├── Unauthorized          401  no or wrong bearer token
    ├── NotFound              404  no such object or resource
    ├── MethodNotAllowed      405  a verb the resource does not serve
    ├── AlreadyExists         409  create of an existing name
    ├── Conflict              409  stale resourceVersion
    ├── Gone                  410  resourceVersion older than the kept history
    ├── RequestEntityTooLarge 413  a body past the size limit, a JSON patch of too many operations
    ├── UnsupportedMediaType  415  e.g. strategic merge patch on a custom resource
    ├── Invalid               422  schema or metadata validation failed; causes name the fields
    └── InternalError         500
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Cause",
    "Conflict",
    "Gone",
    "InternalError",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "RequestEntityTooLarge",
    "Unauthorized",
    "UnsupportedMediaType",
]


@dataclass(frozen=True)
class Cause:
    """One reason an object is invalid, naming the field (``spec.properties[0].name``)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    """A failure to report to the client as a ``v1 Status``."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _qualified(resource: str, group: str) -> str:
    """``devices.devices.kubeedge.io``, or ``pods`` for the core group, as the real server writes it."""
    return f"{resource}.{group}" if group else resource


def _details(kind: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def object(cls, resource: str, group: str, name: str) -> NotFound:
        qualified = _qualified(resource, group)
        return cls(f'{qualified} "{name}" not found', details=_details(resource, group, name))


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def object(cls, resource: str, group: str, name: str) -> AlreadyExists:
        qualified = _qualified(resource, group)
        return cls(f'{qualified} "{name}" already exists', details=_details(resource, group, name))


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def stale(cls, resource: str, group: str, name: str) -> Conflict:
        qualified = _qualified(resource, group)
        return cls(
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            details=_details(resource, group, name),
        )


class Gone(ApiError):
    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, group: str, name: str, causes: list[Cause]) -> None:
        qualified = _qualified(kind, group)
        summary = ", ".join(f"{c.field}: {c.message}" for c in causes)
        details = _details(kind, group, name)
        details["causes"] = [c.to_dict() for c in causes]
        super().__init__(f'{qualified} "{name}" is invalid: {summary}', details=details)
        self.causes = causes


class InternalError(ApiError):
    code = 500
    reason = "InternalError"
