"""The ``edgetwin`` command: one sub-command module per verb in ``edgetwin.commands``.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``run`` to a function
taking the parsed arguments and returning an exit code (a coroutine function runs in a fresh event
loop). Errors from the project's error tree become a one-line message and a non-zero exit code;
only this module configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Sequence

from edgemqtt.errors import MqttError
from twin.errors import EdgetwinError

__all__ = ["build_parser", "main"]

# Order is the order of `edgetwin --help`.
_COMMANDS = ("up", "node", "cloud", "broker", "twin", "mapper", "discover", "convert", "apiserver")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` just that command's (see ``main``)."""
    parser = argparse.ArgumentParser(
        prog="edgetwin",
        description="Device twins, protocol mappers and Kubernetes Device CRDs for edge gateways.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("EDGETWIN_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (env EDGETWIN_LOG_LEVEL; default INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"edgetwin.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"edgetwin.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when it is plain to see (``edgetwin [--log-level L] COMMAND ...``)."""
    rest = list(argv)
    if rest[:1] == ["--log-level"]:
        rest = rest[2:]
    elif rest and rest[0].startswith("--log-level="):
        rest = rest[1:]
    return rest[0] if rest and rest[0] in _COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only the command being run is imported: a node that starts in a fraction of a second does not
    # load the embedded API server, the broker and the converters first. Help and mistakes get all.
    parser = build_parser(_command_named(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run = args.run
    try:
        result = asyncio.run(run(args)) if inspect.iscoroutinefunction(run) else run(args)
    except EdgetwinError as exc:
        print(f"edgetwin {args.command}: error: {exc}", file=sys.stderr)
        return 2 if exc.code < 500 else 1
    except MqttError as exc:
        print(f"edgetwin {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
