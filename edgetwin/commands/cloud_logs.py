"""``edgetwin cloud logs POD``: a pod's log from its edge node, through the cloud broker.

On the single-machine stack ``kubectl logs`` works (the embedded API server asks cloud-sync). On a
real cluster kube-apiserver would ask the node's kubelet API, which an edgetwin node does not serve,
so ``kubectl logs`` fails there; this command fetches the log over the cloud link instead, with
kubectl's options (``cloud_sync.log_client``). It runs where cloud-sync's data directory is (it
logs in to the cloud broker as cloud-sync, with its password) and needs the cluster's kubeconfig.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from edgemqtt import BrokerAddress
from twin.errors import PermanentError, TemporaryError

__all__ = ["add_logs_verb"]

DESCRIPTION = """\
Print the log of a container of a pod that runs on an edgetwin node, fetched from the node over the
cloud link. On a real cluster `kubectl logs` cannot reach an edgetwin node (it asks the node's
kubelet API, which edgetwin does not serve); this command can. Run it where cloud-sync's data
directory is: it logs in to the cloud broker with cloud-sync's password. With the embedded API
server (`edgetwin cloud` without --kubeconfig) plain `kubectl logs` works too."""
_SINCE = re.compile(r"^(\d+)([smh]?)$")


def _seconds(text: str) -> int:
    match = _SINCE.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 5m or 2h")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def add_logs_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: Path) -> None:
    logs = verbs.add_parser(
        "logs",
        prog="edgetwin cloud logs",
        help="print a pod's log, fetched from its edge node over the cloud link (for real clusters)",
        description=DESCRIPTION,
    )
    logs.add_argument("pod", help="the pod's name")
    logs.add_argument("-n", "--namespace", default="default", help="the pod's namespace (default: default)")
    logs.add_argument("-c", "--container", default="", help="the container (needed when the pod has several)")
    logs.add_argument("-f", "--follow", action="store_true", help="go on printing while the container runs")
    logs.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    logs.add_argument("--timestamps", action="store_true", help="each line with its time")
    logs.add_argument(
        "--since", type=_seconds, default=None, metavar="DURATION", help="only lines newer, e.g. 10m"
    )
    logs.add_argument("--limit-bytes", type=int, default=None, metavar="N", help="at most N bytes")
    logs.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="the cluster (default: the pod's service account inside Kubernetes, else the embedded API "
        "server's kubeconfig in --data-dir)",
    )
    logs.add_argument(
        "--data-dir",
        dest="logs_data_dir",
        type=Path,
        default=data_dir,
        metavar="DIR",
        help="cloud-sync's data directory, for its broker password (default .edgetwin/cloud)",
    )
    logs.add_argument(
        "--broker",
        dest="logs_broker",
        default="mqtt://127.0.0.1:1884",
        metavar="URL",
        help="the cloud broker cloud-sync uses (default mqtt://127.0.0.1:1884, the embedded one)",
    )
    logs.add_argument(
        "--tls-ca", dest="logs_tls_ca", type=Path, metavar="FILE", help="CA of an mqtts:// broker"
    )
    logs.set_defaults(run=run_logs)


async def run_logs(args: argparse.Namespace) -> int:
    from cloud_sync import CLOUD_USER, AccessFiles, KubeApi, LogQuery, in_cluster
    from cloud_sync.log_client import fetch_pod_logs

    if args.tail is not None and args.tail < 0:
        raise PermanentError(f"--tail must be 0 or more, not {args.tail}")
    if args.limit_bytes is not None and args.limit_bytes < 1:
        raise PermanentError(f"--limit-bytes must be 1 or more, not {args.limit_bytes}")
    files = AccessFiles(args.logs_data_dir)
    if not files.cloud_password_file.is_file():
        raise PermanentError(
            f"no cloud-sync broker password in {args.logs_data_dir}: give cloud-sync's --data-dir"
        )
    kubeconfig: Path | None = args.kubeconfig
    if kubeconfig is None and not in_cluster():
        kubeconfig = args.logs_data_dir / "apiserver" / "kubeconfig"
    broker = BrokerAddress.parse(args.logs_broker)
    if args.logs_tls_ca is not None:
        broker = broker.with_tls_files(args.logs_tls_ca, None, None)
    broker = broker.with_credentials(CLOUD_USER, files.cloud_password())
    query = LogQuery(
        container=args.container,
        previous=args.previous,
        follow=args.follow,
        tail=args.tail,
        timestamps=args.timestamps,
        limit_bytes=args.limit_bytes,
        since_seconds=args.since,
    )
    api = KubeApi.from_config(kubeconfig)
    out = sys.stdout.buffer
    try:
        async for chunk in fetch_pod_logs(api, broker, args.namespace, args.pod, query):
            out.write(chunk)
            out.flush()
    except LookupError as exc:
        raise PermanentError(str(exc.args[0]) if exc.args else str(exc)) from None
    except (TimeoutError, ConnectionError) as exc:
        raise TemporaryError(str(exc)) from None
    finally:
        await api.aclose()
    return 0
