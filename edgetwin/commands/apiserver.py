"""``edgetwin apiserver``: run the embedded Kubernetes-compatible API server alone.

It installs the Device and DeviceModel CRDs from the repository's ``crds/`` folder when they are not
stored yet, so ``kubectl apply -f crds/samples/`` works against a fresh data directory at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from edgetwin.settings import CRDS
from twin.errors import PermanentError

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


class ApiServerFailed(PermanentError):
    """The API server could not start (port in use, bad data directory, bad CRD file)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "apiserver",
        help="run the embedded Kubernetes API server (kubectl works against it)",
        description="Run a single-machine Kubernetes-compatible API server with the Device CRDs installed.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".edgetwin/apiserver"),
        help="where objects, TLS files and the kubeconfig live (default .edgetwin/apiserver)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=6443, help="port to listen on (default 6443; 0 = any free port)"
    )
    parser.add_argument(
        "--crds",
        type=Path,
        default=CRDS,
        help=f"folder of CRD manifests to install at start-up (default {CRDS})",
    )
    parser.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="append one JSON line per resource request to FILE (kube-apiserver's audit event: "
        "who, which verb on which resource, the answer's code); default: no audit log",
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from api_server import ApiServerError, serve

    crds = [args.crds] if args.crds.exists() else []
    if not crds:
        log.warning("no CRD folder at %s: Device and DeviceModel are not installed", args.crds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed before anything is printed: a caller may send SIGTERM as soon as it reads the URL.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with serve(args.data_dir, args.host, args.port, crds=crds, audit_log=args.audit_log) as server:
            kubeconfig = server.kubeconfig_path.resolve()
            print(f"embedded Kubernetes API server on {server.url} (Ctrl-C to stop)", flush=True)
            print(f"kubeconfig: {kubeconfig}", flush=True)
            print(f"try: kubectl --kubeconfig {kubeconfig} get devices", flush=True)
            await stop.wait()
    except ApiServerError as exc:
        raise ApiServerFailed(str(exc)) from exc
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    return 0
