"""Running the embedded API server: ``serve()`` starts it, writes the kubeconfig, and stops it.

Everything lives under one data directory: ``state.db`` (objects and history), ``token``, the
TLS files (``ca.crt``, ``server.crt``...) and ``kubeconfig``. CRD manifests passed in ``crds``
are applied at start-up when they are not stored yet, so ``kubectl apply -f crds/samples/``
works against a fresh server straight away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from api_server.audit import AuditLog
from api_server.auth import auth_middleware, load_or_create_token, write_kubeconfig
from api_server.builtin import BUILTIN_TYPES, CRD_TYPE
from api_server.crds import normalize_crd_spec
from api_server.errors import ApiError
from api_server.files import prepare_data_dir
from api_server.handlers import ResourceHandlers
from api_server.limits import MAX_BODY_BYTES
from api_server.operations import Operations
from api_server.pod_log import PodLogs
from api_server.resources import Registry, validate_crd
from api_server.responses import error_middleware, internal_error_guard
from api_server.routing import Router
from api_server.storage import Store, copy_object
from api_server.streams import WatchStreams
from api_server.tls import ensure_tls, server_ssl_context
from api_server.watch import WatchHub, WatchLimits

__all__ = ["ApiServer", "ApiServerError", "load_crd_manifests", "serve"]

log = logging.getLogger(__name__)


class ApiServerError(Exception):
    """The API server cannot start (bad CRD manifest, port in use, unreadable data directory)."""


@dataclass(frozen=True)
class ApiServer:
    """A running server: where it listens and how to reach it."""

    host: str
    port: int
    url: str
    token: str
    kubeconfig_path: Path
    data_dir: Path
    operations: Operations


def load_crd_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The CustomResourceDefinition documents in these files or folders (other kinds skipped)."""
    found: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(p for p in path.glob("*.y*ml") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError) as exc:
                raise ApiServerError(f"{file}: cannot be read as YAML: {exc}") from exc
            found += [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    return found


def _install_crds(ops: Operations, crds: list[dict[str, Any]]) -> None:
    """Create the shipped CRDs that are missing; bring a stored one up to the shipped spec."""
    for crd in crds:
        name = str(crd.get("metadata", {}).get("name", ""))
        stored = ops.store.get(CRD_TYPE.key, "", name)
        try:
            if stored is None:
                ops.create(CRD_TYPE, "", crd)
                log.info("installed CRD %s", name)
            else:
                validate_crd(crd)
                if stored.get("spec") != normalize_crd_spec(crd["spec"]):
                    ops.update(CRD_TYPE, "", name, {**copy_object(stored), "spec": crd["spec"]})
                    log.info("updated CRD %s to the shipped version", name)
        except ApiError as exc:
            raise ApiServerError(f"CRD {name}: {exc.message}") from exc


@asynccontextmanager
async def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    crds: Iterable[Path] = (),
    history: int = 20_000,
    bookmark_interval: float = 30.0,
    watch_limits: WatchLimits | None = None,
    tls: bool = True,
    pod_logs: PodLogs | None = None,
    audit_log: Path | None = None,
    client_ca: Path | None = None,
) -> AsyncIterator[ApiServer]:
    """Run the server until the block exits; ``port=0`` picks a free port.

    ``watch_limits`` says how far behind a watch may fall before it is closed (``WatchLimits()``).
    With ``tls=False`` it speaks plain HTTP; the ``kubernetes`` client accepts that, but kubectl
    then sends no bearer token and every request is refused. ``pod_logs`` is where ``pods/log``
    (``kubectl logs``) reads containers' logs from (``api_server.pod_log``); without it such
    requests get a 503. ``audit_log`` is a file to append an audit event to for every resource
    request (``api_server.audit``: who, which verb on what, the answer's code). With ``client_ca``, a
    client certificate signed by that CA authenticates a request as the token does (a kubeconfig's
    ``client-certificate-data``).
    """
    if client_ca is not None and not tls:
        raise ApiServerError("client certificates need TLS: client_ca was given with tls=False")
    data_dir = Path(data_dir)
    prepare_data_dir(data_dir)
    crd_docs = load_crd_manifests(crds)
    store = Store(data_dir / "state.db", history=history)
    try:
        audit = AuditLog(audit_log) if audit_log is not None else None
    except OSError as exc:
        store.close()
        raise ApiServerError(f"cannot write the audit log {audit_log}: {exc}") from exc
    try:
        ops = Operations(store, Registry(BUILTIN_TYPES))
        _install_crds(ops, crd_docs)
        token = load_or_create_token(data_dir)
        hub = WatchHub()
        store.subscribe(hub.publish)
        app = web.Application(
            middlewares=[
                error_middleware,
                auth_middleware(token, client_certificates=client_ca is not None),
                internal_error_guard,
            ],
            client_max_size=MAX_BODY_BYTES,
        )
        watches = WatchStreams(
            store, hub, bookmark_interval=bookmark_interval, limits=watch_limits or WatchLimits()
        )
        router = Router(
            ops.registry,
            ResourceHandlers(ops, watches, pod_logs, audit).handle,
            server_address=f"{host}:{port}",
        )
        app.router.add_route("*", "/{tail:.*}", router.dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True)
        await runner.setup()
        try:
            tls_files = ensure_tls(data_dir, host) if tls else None
            ssl_context = server_ssl_context(tls_files, client_ca) if tls_files else None
            site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
            try:
                await site.start()
            except OSError as exc:
                raise ApiServerError(f"cannot listen on {host}:{port}: {exc}") from exc
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            actual_port = int(sockets[0].getsockname()[1]) if sockets else port
            router.server_address = f"{host}:{actual_port}"
            url_host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
            url = f"{'https' if tls_files else 'http'}://{url_host}:{actual_port}"
            kubeconfig = write_kubeconfig(
                data_dir / "kubeconfig",
                server=url,
                token=token,
                ca_cert=tls_files.ca_cert if tls_files else None,
            )
            log.info("API server on %s (kubeconfig %s)", url, kubeconfig)
            yield ApiServer(host, actual_port, url, token, kubeconfig, data_dir, ops)
        finally:
            hub.close_all()
            await asyncio.sleep(0)  # let the watch handlers see the end of their streams
            open_connections = [c.transport for c in runner.server.connections] if runner.server else []
            await runner.cleanup()
            # A TLS close waits for the peer's close_notify (30 s by default), which an idle
            # keep-alive client never sends: drop what is left, the server is going away.
            for transport in open_connections:
                if transport is not None:
                    transport.abort()
    finally:
        store.close()
        if audit is not None:
            audit.close()
