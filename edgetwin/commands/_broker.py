"""The broker options every command that talks to a broker shares: ``--broker`` and its TLS files.

One place adds them and turns them into a ``BrokerAddress``, so that ``node``, ``twin``,
``mapper run`` and ``up`` read URLs, credentials and TLS files the same way. Credentials come from
the URL (``mqtts://USER:PASSWORD@HOST:PORT``, percent-encoded: ``p%40ss`` is ``p@ss``) or from
``EDGETWIN_BROKER``, which is read here and nowhere else; they are never printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgemqtt.address import BrokerAddress
from edgetwin.settings import default_broker

__all__ = ["add_broker_options", "broker_address"]

BROKER_HELP = (
    "MQTT broker URL: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (default port 8883); "
    "credentials as mqtts://USER:PASSWORD@HOST:PORT, with @ : / in them written %%40 %%3A %%2F "
    "(env EDGETWIN_BROKER; default %(default)s)"
)


def add_broker_options(
    parser: argparse.ArgumentParser, *, required_default: bool = True, help: str = BROKER_HELP
) -> None:
    """Add ``--broker`` and ``--tls-*``; ``--broker`` defaults to ``EDGETWIN_BROKER`` or the local
    broker, or to nothing without ``required_default`` (``up``: start the embedded one)."""
    parser.add_argument("--broker", default=default_broker() if required_default else None, help=help)
    parser.add_argument(
        "--tls-ca",
        type=Path,
        metavar="FILE",
        help="CA certificate(s) to check an mqtts:// broker against (default: the system's CAs)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="client certificate for an mqtts:// broker that asks for one",
    )
    parser.add_argument(
        "--tls-key", type=Path, metavar="FILE", help="private key of --tls-cert (if not in the same file)"
    )


def broker_address(args: argparse.Namespace) -> BrokerAddress:
    """The broker the parsed options name; ``InvalidBrokerAddress`` (one line, no password) if unusable."""
    address = BrokerAddress.parse(args.broker)
    if args.tls_ca or args.tls_cert or args.tls_key:
        address = address.with_tls_files(args.tls_ca, args.tls_cert, args.tls_key)
    return address
