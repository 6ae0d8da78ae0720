"""Bearer-token authentication and the kubeconfig that carries the token to kubectl.

The token is generated once per data directory (``DIR/token``, 0600) and survives restarts,
so a kubeconfig written earlier keeps working. Requests without it get ``401`` as a ``Status``;
health endpoints stay open for probes. A server given a client CA (``serve(client_ca=...)``) also
admits a client that presented a certificate signed by it, as kube-apiserver does: the TLS
handshake has verified it already, so a certificate on the connection is enough.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from api_server.errors import Unauthorized
from api_server.files import write_private

__all__ = ["auth_middleware", "load_or_create_token", "write_kubeconfig"]

_OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_or_create_token(data_dir: Path) -> str:
    path = data_dir / "token"
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, f"{token}\n".encode())
    return token


def write_kubeconfig(
    path: Path, *, server: str, token: str, ca_cert: Path | None = None, namespace: str = "default"
) -> Path:
    """A kubeconfig with one cluster, user and context named ``edgetwin``."""
    cluster: dict[str, str] = {"server": server}
    if ca_cert is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "edgetwin", "cluster": cluster}],
        "users": [{"name": "edgetwin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "edgetwin",
                "context": {"cluster": "edgetwin", "user": "edgetwin", "namespace": namespace},
            }
        ],
        "current-context": "edgetwin",
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    write_private(tmp, yaml.safe_dump(config, sort_keys=False).encode())
    os.replace(tmp, path)
    return path


def auth_middleware(token: str, *, client_certificates: bool = False) -> Middleware:
    expected = f"Bearer {token}".encode()

    def certified(request: web.Request) -> bool:
        transport = request.transport
        return client_certificates and transport is not None and bool(transport.get_extra_info("peercert"))

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in _OPEN_PATHS and not certified(request):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("Unauthorized")
        return await handler(request)

    return middleware
