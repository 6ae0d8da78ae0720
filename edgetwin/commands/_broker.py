"""The broker options every command that talks to a broker shares: ``--broker`` and its TLS files.

One place adds them and turns them into a ``BrokerAddress``, so that ``node``, ``twin``,
``mapper run`` and ``up`` read URLs, credentials and TLS files the same way. A command that talks to
a second broker (``node --cloud``) adds the same options again under another name, with TLS files of
their own (``--cloud-tls-ca`` ...). Credentials come from
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


def _tls_prefix(name: str) -> str:
    return "tls" if name == "broker" else f"{name}-tls"


def add_broker_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    required_default: bool = True,
    help: str = BROKER_HELP,
    name: str = "broker",
) -> None:
    """Add ``--broker`` and ``--tls-*``; ``--broker`` defaults to ``EDGETWIN_BROKER`` or the local
    broker, or to nothing without ``required_default`` (``up``: start the embedded one).

    Another ``name`` adds ``--NAME`` (no default) and ``--NAME-tls-*`` for a second broker.
    """
    default = (default_broker() if required_default else None) if name == "broker" else None
    parser.add_argument(f"--{name}", default=default, help=help)
    what = "an mqtts:// broker" if name == "broker" else f"an mqtts:// --{name}"
    prefix = _tls_prefix(name)
    parser.add_argument(
        f"--{prefix}-ca",
        type=Path,
        metavar="FILE",
        help=f"CA certificate(s) to check {what} against (default: the system's CAs)",
    )
    parser.add_argument(
        f"--{prefix}-cert",
        type=Path,
        metavar="FILE",
        help=f"client certificate for {what} that asks for one",
    )
    parser.add_argument(
        f"--{prefix}-key",
        type=Path,
        metavar="FILE",
        help=f"private key of --{prefix}-cert (if not in the same file)",
    )


def broker_address(args: argparse.Namespace, name: str = "broker") -> BrokerAddress:
    """The broker the parsed options name; ``InvalidBrokerAddress`` (one line, no password) if unusable."""
    address = BrokerAddress.parse(getattr(args, name))
    dest = _tls_prefix(name).replace("-", "_")
    ca, cert, key = (getattr(args, f"{dest}_{part}") for part in ("ca", "cert", "key"))
    if ca or cert or key:
        address = address.with_tls_files(ca, cert, key)
    return address
