"""``edgetwin broker``: run the embedded MQTT broker alone; SIGHUP reloads its password file and ACL."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from edgemqtt.broker import BrokerLimits, EmbeddedBroker
from edgemqtt.errors import InvalidBrokerAddress
from edgetwin.commands._stop import wait_for_stop

log = logging.getLogger(__name__)

_DEFAULTS = BrokerLimits()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="run the embedded MQTT broker",
        description="Run the embedded MQTT 3.1.1 broker. Without --password-file it is anonymous and "
        "listens only on a loopback address. SIGHUP reads the password file and the ACL again, as "
        "mosquitto does. docs/mqtt.md explains TLS, passwords, ACLs and limits.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 1883; 8883 with TLS)")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="require a user name and password from this file (mosquitto_passwd's format)",
    )
    parser.add_argument(
        "--acl-file",
        type=Path,
        metavar="FILE",
        help="what each user may publish and read (mosquitto's format)",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve TLS with this certificate")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="key of --tls-cert, if not in it")
    parser.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="require client certificates signed by this CA"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=_DEFAULTS.max_connections,
        help="connections open at once (default %(default)s)",
    )
    parser.add_argument(
        "--max-packet",
        type=int,
        default=_DEFAULTS.max_packet,
        metavar="BYTES",
        help="largest packet accepted (default %(default)s)",
    )
    parser.add_argument(
        "--max-keepalive",
        type=int,
        default=_DEFAULTS.max_keepalive,
        metavar="SECONDS",
        help="keepalive enforced for clients asking for 0 or more (default %(default)s)",
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    try:
        limits = BrokerLimits(
            max_connections=args.max_connections, max_packet=args.max_packet, max_keepalive=args.max_keepalive
        )
    except ValueError as exc:
        raise SystemExit(f"edgetwin broker: error: {exc}") from None
    port = args.port if args.port is not None else (8883 if args.tls_cert else 1883)
    broker = EmbeddedBroker(
        args.host,
        port,
        limits=limits,
        password_file=args.password_file,
        acl_file=args.acl_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )
    await broker.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _reload, broker)
    try:
        print(f"embedded MQTT broker on {broker.address.url} (Ctrl-C to stop)", flush=True)
        await wait_for_stop()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await broker.stop()
    return 0


def _reload(broker: EmbeddedBroker) -> None:
    try:
        broker.reload()
    except InvalidBrokerAddress as exc:
        log.error("reload refused: %s", exc)  # noqa: TRY400 - the reason is the whole story
