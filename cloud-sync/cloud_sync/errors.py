"""The Kubernetes API's answers as edgetwin errors, so that callers decide from the type alone::

    EdgetwinError
    ├── TemporaryError
    │   ├── ApiUnavailable   no answer (connection refused or reset, timeout), 429 or 5xx: back off, retry
    │   └── ApiConflict      409: a resourceVersion precondition failed (re-read and redo), or the
    │                        object exists already (``already_exists``)
    └── PermanentError
        ├── ApiNotFound      404: the object (or its kind) is not there
        ├── ApiGone          410: a watch's resourceVersion is older than the server keeps: list again
        ├── ApiRefused       any other 4xx: the request itself is wrong (422 Invalid, 403 Forbidden...)
        └── InvalidKubeconfig  the kubeconfig (or the pod's service account) cannot be used

``status`` is the HTTP status (0 when there was no answer) and ``reason`` the ``Status`` reason.
"""

from __future__ import annotations

from twin.errors import EdgetwinError, PermanentError, TemporaryError

__all__ = [
    "ApiConflict",
    "ApiError",
    "ApiGone",
    "ApiNotFound",
    "ApiRefused",
    "ApiUnavailable",
    "InvalidKubeconfig",
    "api_error",
]


class ApiError(EdgetwinError):
    """A request to the Kubernetes API that did not succeed."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ApiUnavailable(ApiError, TemporaryError):
    """No answer, or 429 / 5xx: the same request may succeed later."""


class ApiConflict(ApiError, TemporaryError):
    """409: the object changed since it was read (re-read it), or it exists already."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class ApiNotFound(ApiError, PermanentError):
    """404: no such object (or no such kind: the CRDs are not installed)."""

    code = 404


class ApiGone(ApiError, PermanentError):
    """410: a watch asked for a resourceVersion the server no longer keeps."""

    code = 410


class ApiRefused(ApiError, PermanentError):
    """Another 4xx: the API refuses the request itself; sending it again fails the same way."""


class InvalidKubeconfig(PermanentError):
    """The kubeconfig file, or the in-cluster service account, cannot be used."""


def api_error(status: int, reason: str, message: str) -> ApiError:
    """The error class for an HTTP status."""
    text = f"{status} {reason}: {message}" if message else f"{status} {reason}"
    if status == 409:
        return ApiConflict(text, status=status, reason=reason)
    if status == 404:
        return ApiNotFound(text, status=status, reason=reason)
    if status == 410:
        return ApiGone(text, status=status, reason=reason)
    if status == 429 or status >= 500 or status == 0:
        return ApiUnavailable(text, status=status, reason=reason)
    return ApiRefused(text, status=status, reason=reason)
