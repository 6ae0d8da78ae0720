"""An audit log of resource requests, one JSON line each, in kube-apiserver's ``audit.k8s.io/v1`` shape.

``serve(audit_log=PATH)`` (``edgetwin apiserver --audit-log PATH``) appends an ``Event`` at level
``Metadata`` for every request on a resource: who asked (the client's address and user agent),
the Kubernetes verb (``get list watch create update patch delete deletecollection``), the object
(``objectRef``: API group, resource, subresource, namespace, name) and the answer's status code.
That is what an RBAC rule is written against, so the log shows exactly which rights a client
such as cloud-sync uses (tests/cloud_sync/test_deploy_run.py compares them with the ClusterRole
it is deployed with). A watch is logged when its stream starts (stage ``ResponseStarted``), every
other request when it is answered (``ResponseComplete``). Discovery and OpenAPI requests are not
logged: every client makes them and no RBAC rule names them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from aiohttp import web

from api_server.routing import Target, bool_param

__all__ = ["AuditLog", "verb_of"]

log = logging.getLogger(__name__)

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def verb_of(request: web.Request, target: Target) -> str:
    """The Kubernetes verb of a resource request, as RBAC and kube-apiserver's audit name it."""
    method = request.method
    if method == "GET":
        if target.watch or bool_param(request, "watch"):
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return _METHOD_VERBS.get(method, method.lower())


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """Appends audit events to a file; each line is written (and flushed) as the request ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = path.open("ab")

    def record(
        self, request: web.Request, target: Target, code: int, received: datetime, *, started: bool = False
    ) -> None:
        if self._file is None:
            return
        rtype = target.rtype
        ref: dict[str, Any] = {"resource": rtype.plural, "apiGroup": rtype.group, "apiVersion": rtype.version}
        if target.namespace:
            ref["namespace"] = target.namespace
        if target.name:
            ref["name"] = target.name
        if target.subresource:
            ref["subresource"] = target.subresource
        event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": str(uuid.uuid4()),
            "stage": "ResponseStarted" if started else "ResponseComplete",
            "requestURI": request.path_qs,
            "verb": verb_of(request, target),
            # one token, one user: the embedded server has no other identities (docs/apiserver.md)
            "user": {"username": "edgetwin-admin", "groups": ["system:masters", "system:authenticated"]},
            "sourceIPs": [request.remote or ""],
            "userAgent": request.headers.get("User-Agent", ""),
            "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _micro_time(received),
            "stageTimestamp": _micro_time(datetime.now(UTC)),
        }
        try:
            self._file.write(orjson.dumps(event) + b"\n")
            self._file.flush()
        except OSError:  # a full disk must not fail the request it records
            log.exception("cannot write the audit log %s", self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
