"""``edgetwin cloud``: run cloud-sync; ``edgetwin cloud token``: the join token for new nodes.

cloud-sync mirrors Device CRDs to the edge nodes and their reports back (docs/cloud-sync.md). With
``--kubeconfig`` (or inside a pod) it uses that cluster; with neither it starts the embedded API
server in ``DATA_DIR/apiserver`` and writes its kubeconfig there. With ``--broker`` it uses that
cloud broker (mosquitto reading ``DATA_DIR/broker/passwd`` and ``DATA_DIR/broker/acl``, reloaded by
``--broker-reload-command``); without, it starts the embedded broker on ``--mqtt-port`` (1884: the
gateway's own broker keeps 1883) with those files. SIGHUP writes the broker files again from the
token (after ``edgetwin cloud token --rotate``). With the embedded API server, cloud-sync also
binds pending pods that select edge nodes (``--binder``) and serves ``kubectl logs`` through it
(``_pod_logs``). The ``kubernetes`` client is imported only here, in ``run``, never for ``--help``
or ``token``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgemqtt import BrokerAddress
from edgemqtt.errors import BrokerUnavailable
from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._pod_logs import CloudHolder, pod_logs_through
from edgetwin.commands._stop import run_until_stopped
from edgetwin.commands.cloud_logs import add_logs_verb
from edgetwin.settings import CRDS, default_data_dir
from twin.errors import TemporaryError

if TYPE_CHECKING:
    from cloud_sync import AccessFiles, BrokerReload
    from cloud_sync.dashboard import DashboardSettings

__all__ = ["register"]

log = logging.getLogger(__name__)

PID_FILE = "cloud.pid"
_HELP = (
    "Mirror Device and DeviceModel CRDs to edge nodes and their reported values back into Device "
    "status, register edge nodes as Kubernetes Nodes, and keep the cloud broker's passwords and ACL "
    "for the admitted nodes. Without --kubeconfig (and outside a pod) it starts the embedded API "
    "server; without --broker it starts the embedded cloud broker. docs/cloud-sync.md explains it all."
)


def _data_dir() -> Path:
    return default_data_dir() / "cloud"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cloud",
        help="run cloud-sync: Device CRDs <-> edge nodes; `cloud token` prints the join token",
        description=_HELP,
        usage="edgetwin cloud [OPTIONS]\n       edgetwin cloud token [--data-dir DIR] [--rotate]\n"
        "       edgetwin cloud logs POD [-c CONTAINER] [-f] [--previous] [--tail N] ...",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=_data_dir(),
        help="join token, broker files and the embedded API server's data (default .edgetwin/cloud)",
    )
    add_broker_options(
        parser,
        required_default=False,
        help="the cloud broker, mqtt[s]://HOST:PORT (default: start the embedded one on --mqtt-port); "
        "without credentials in the URL cloud-sync logs in as edgetwin-cloud",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="the cluster to use (default: the pod's service account inside Kubernetes, else the "
        "embedded API server)",
    )
    parser.add_argument(
        "--admit",
        nargs="+",
        default=[],
        metavar="NODE",
        help="also admit these nodes to the broker (Devices' nodeName and existing edge Nodes always are)",
    )
    parser.add_argument(
        "--broker-reload-command",
        metavar="CMD",
        help="shell command that makes an external broker reload its password file and ACL after "
        "cloud-sync rewrote them (e.g. 'pkill -HUP -x mosquitto')",
    )
    parser.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--dashboard-port",
        type=int,
        metavar="N",
        help="serve the live dashboard on this port (default: 8090 with the embedded API server; "
        "with --kubeconfig or in a pod only when given)",
    )
    parser.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the dashboard (default 127.0.0.1; anyone who can reach it still needs its token)",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="serve no dashboard")
    parser.add_argument(
        "--grace",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="a node without heartbeats this long is NotReady (default 40)",
    )
    parser.add_argument(
        "--binder",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bind pending pods whose nodeSelector matches a Ready edge node (a minimal binder, "
        "docs/pods.md; default: on with the embedded API server, which has no scheduler, off with "
        "--kubeconfig, where kube-scheduler does it)",
    )
    parser.add_argument(
        "--mqtt-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the embedded cloud broker (default 127.0.0.1; 0.0.0.0 for gateways elsewhere)",
    )
    parser.add_argument(
        "--mqtt-port",
        type=int,
        default=1884,
        metavar="N",
        help="port of the embedded cloud broker (default 1884)",
    )
    parser.add_argument(
        "--apiserver-port",
        type=int,
        default=6443,
        metavar="N",
        help="port of the embedded API server (default 6443)",
    )
    parser.set_defaults(run=run)
    verbs = parser.add_subparsers(
        dest="cloud_command", title="commands", metavar="token|logs", required=False
    )
    token = verbs.add_parser(
        "token",
        help="print the join token nodes use (--rotate: make a new one)",
        description="Print the cluster's join token, making it (and the broker files) if there is none. "
        "A node joins with `edgetwin node NAME --cloud URL --token TOKEN`.",
    )
    token.add_argument(
        "--data-dir",
        dest="token_data_dir",
        type=Path,
        help="cloud-sync's data directory (default .edgetwin/cloud)",
    )
    token.add_argument(
        "--rotate",
        action="store_true",
        help="make a new token: nodes with the old one are refused until given the new one",
    )
    token.set_defaults(run=run_token)
    add_logs_verb(verbs, _data_dir())


# -- token ----------------------------------------------------------------------------------------------


def run_token(args: argparse.Namespace) -> int:
    from cloud_sync import AccessFiles

    data_dir: Path = args.token_data_dir or args.data_dir
    files = AccessFiles(data_dir)
    try:
        if args.rotate:
            token = files.rotate_token()
            nodes = files.write(files.admitted())
            print(f"new join token; the broker files now admit {len(nodes)} nodes with it", file=sys.stderr)
            _signal_running(data_dir)
        else:
            token = files.token()
            if not files.password_file.exists():
                files.write(())
    except OSError as exc:
        raise TemporaryError(f"cannot use {data_dir}: {exc.strerror or exc}") from exc
    print(token)
    return 0


def _signal_running(data_dir: Path) -> None:
    """Tell a running ``edgetwin cloud`` of this data directory to reload its broker (SIGHUP)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        print("no edgetwin cloud is running here: start it, or reload the broker yourself", file=sys.stderr)
        return
    if b"cloud" not in command:
        return
    os.kill(pid, signal.SIGHUP)
    print(f"the running edgetwin cloud (pid {pid}) reloads its broker", file=sys.stderr)


# -- the service ------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    from cloud_sync import AccessFiles, CloudSync, CloudSyncSettings, KubeApi, in_cluster, reload_command
    from cloud_sync.dashboard import DashboardUnavailable

    data_dir: Path = args.data_dir
    files = AccessFiles(data_dir)
    try:
        token = files.token()
    except OSError as exc:
        raise TemporaryError(f"cannot use {data_dir}: {exc.strerror or exc}") from exc
    holder = CloudHolder()
    async with contextlib.AsyncExitStack() as stack:
        kubeconfig: Path | None = args.kubeconfig
        where = "the pod's service account" if kubeconfig is None and in_cluster() else str(kubeconfig)
        embedded = kubeconfig is None and not in_cluster()
        if embedded:
            kubeconfig = await _embedded_api_server(stack, data_dir, args.apiserver_port, holder)
            where = f"embedded, kubeconfig {kubeconfig}"
        api = KubeApi.from_config(kubeconfig)
        stack.push_async_callback(api.aclose)
        reload: BrokerReload | None
        if args.broker:
            broker = broker_address(args)
            reload = reload_command(args.broker_reload_command) if args.broker_reload_command else None
            if reload is None:
                log.warning(
                    "no --broker-reload-command: reload %s yourself when cloud-sync rewrites %s and %s",
                    broker.url,
                    files.password_file,
                    files.acl_file,
                )
            broker_note = broker.url
        else:
            broker, reload = await _embedded_broker(stack, files, args)
            broker_note = f"{broker.url} (embedded)"
        settings = CloudSyncSettings(
            broker=broker,
            data_dir=data_dir,
            admit=tuple(args.admit),
            grace=args.grace,
            metrics_port=args.metrics_port,
            dashboard=_dashboard(args, files, embedded=embedded),
            binder=embedded if args.binder is None else args.binder,
        )
        cloud = CloudSync(settings, api, reload=reload)
        holder.cloud = cloud
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, cloud.reload_access)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)
        pid_file = data_dir / PID_FILE
        pid_file.write_text(f"{os.getpid()}\n")
        stack.callback(pid_file.unlink, missing_ok=True)

        def banner() -> None:
            dashboard = cloud.dashboard.url if cloud.dashboard is not None else None
            print(
                _banner(broker_note, _gateway_url(args, broker), where, files, token, dashboard), flush=True
            )

        try:
            await run_until_stopped(cloud.run(), ready=cloud.ready, on_ready=banner)
        except DashboardUnavailable as exc:
            raise TemporaryError(f"{exc} (another port: --dashboard-port N; none: --no-dashboard)") from exc
    return 0


def _dashboard(args: argparse.Namespace, files: AccessFiles, *, embedded: bool) -> DashboardSettings | None:
    """On by default on one machine (the embedded API server), opt-in against a cluster."""
    from cloud_sync.dashboard import DEFAULT_PORT, DashboardSettings

    if args.no_dashboard or (args.dashboard_port is None and not embedded):
        return None
    port = DEFAULT_PORT if args.dashboard_port is None else args.dashboard_port
    try:
        token = files.dashboard_token()
    except OSError as exc:
        raise TemporaryError(f"cannot use {files.data_dir}: {exc.strerror or exc}") from exc
    return DashboardSettings(token=token, host=args.dashboard_host, port=port)


async def _embedded_api_server(
    stack: contextlib.AsyncExitStack, data_dir: Path, port: int, holder: CloudHolder
) -> Path:
    from api_server import ApiServerError, serve

    try:
        server = await stack.enter_async_context(
            serve(data_dir / "apiserver", "127.0.0.1", port, crds=[CRDS], pod_logs=pod_logs_through(holder))
        )
    except ApiServerError as exc:
        raise TemporaryError(
            f"the embedded API server could not start: {exc} (another port: --apiserver-port; "
            "a cluster: --kubeconfig)"
        ) from exc
    return server.kubeconfig_path.resolve()


async def _embedded_broker(
    stack: contextlib.AsyncExitStack, files: AccessFiles, args: argparse.Namespace
) -> tuple[BrokerAddress, BrokerReload]:
    from edgemqtt.broker import EmbeddedBroker

    files.write(args.admit)  # the broker starts with the files; cloud-sync completes them at once
    broker = EmbeddedBroker(
        args.mqtt_host, args.mqtt_port, password_file=files.password_file, acl_file=files.acl_file
    )
    try:
        await broker.start()
    except BrokerUnavailable as exc:
        raise TemporaryError(
            f"{exc}. Pick another port with --mqtt-port, or use a running broker with --broker"
        ) from exc
    stack.push_async_callback(broker.stop)

    async def reload() -> None:
        broker.reload()

    return broker.address, reload


def _gateway_url(args: argparse.Namespace, address: BrokerAddress) -> str:
    """The cloud URL a gateway gives ``edgetwin node --cloud``."""
    if not args.broker and args.mqtt_host in ("0.0.0.0", "::"):
        return f"mqtt://{socket.gethostname()}:{address.port}"
    return address.url


def _banner(
    broker: str, gateway_url: str, api: str, files: AccessFiles, token: str, dashboard: str | None
) -> str:
    return "\n".join(
        [
            "edgetwin cloud is up.",
            f"  Kubernetes API  {api}",
            *([f"  dashboard       {dashboard}"] if dashboard else []),
            f"  cloud broker    {broker}",
            f"                  passwords {files.password_file}, ACL {files.acl_file}",
            f"  join token      {token}",
            f"                  in {files.token_file}; `edgetwin cloud token --rotate` makes a new one",
            "On a gateway:",
            f"  edgetwin node NODE --broker mqtt://127.0.0.1:1883 --cloud {gateway_url} --token {token}",
            "Then apply Devices whose spec.nodeName is NODE: kubectl apply -f crds/samples/",
            "Ctrl-C stops it.",
        ]
    )
