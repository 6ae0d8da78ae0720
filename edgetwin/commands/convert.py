"""``edgetwin convert FILE...``: KubeEdge v1alpha2 (and v1alpha1) Device/DeviceModel YAML to v1beta1.

The converted documents go to stdout (or ``-o FILE``), ready for ``kubectl apply -f`` or
``edgetwin node --devices``; what could not be carried over goes to stderr, one line per object and
field. The rules live in ``twin.convert``; this module reads the files and writes the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from twin.convert import Source, convert
from twin.errors import InvalidManifest
from twin.models import API_GROUP

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="rewrite KubeEdge v1alpha2 Device/DeviceModel YAML as v1beta1",
        description=(
            "Rewrite KubeEdge devices.kubeedge.io/v1alpha2 (or v1alpha1) Devices and DeviceModels, such "
            "as KubeEdge's published demos, as v1beta1: the version edgetwin and KubeEdge 1.15+ use. "
            "The converted YAML goes to stdout; what could not be carried over is listed on stderr, "
            "one line per object and field. Other documents are copied unchanged."
        ),
        epilog="example: edgetwin convert led-model.yaml led-instance.yaml -o led.yaml",
    )
    parser.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="YAML files or folders of them ('-' for stdin)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="write the converted YAML to this file instead of stdout"
    )
    parser.add_argument(
        "--node",
        help="spec.nodeName of every Device (default: the one node the v1alpha2 nodeSelector names)",
    )
    parser.set_defaults(run=run)


def _sources(paths: list[Path]) -> list[Source]:
    """Every document of the named files, and of the YAML files in the named folders.

    A named file without a KubeEdge device object is a mistake (not KubeEdge input); in a folder,
    such files (a CRD, a Deployment of the old mapper) are left out, unless all of them are.
    """
    sources: list[Source] = []
    for path in paths:
        if str(path) == "-" or path.is_file():
            docs = _read(path)
            if not any(_kubeedge(s.doc) for s in docs):
                raise InvalidManifest(f"{_name(path)}: {_NONE}")
            sources += docs
        elif path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            found = [docs for docs in map(_read, inside) if any(_kubeedge(s.doc) for s in docs)]
            if not found:
                raise InvalidManifest(f"{path}: {_NONE} (in its .yaml and .yml files)")
            sources += [source for docs in found for source in docs]
        else:
            raise InvalidManifest(f"{path}: no such file or folder")
    return sources


_NONE = f"no KubeEdge Device or DeviceModel ({API_GROUP}/v1alpha1, v1alpha2 or v1beta1) in it"


def _name(path: Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def _read(path: Path) -> list[Source]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"{path}: cannot be read: {exc}") from exc
    name = _name(path)
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidManifest(f"{name}: not valid YAML{where}: {problem}") from exc
    return [Source(f"{name} (document {index + 1})", doc) for index, doc in enumerate(docs)]


def _kubeedge(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and str(doc.get("apiVersion", "")).startswith(f"{API_GROUP}/")
        and doc.get("kind") in ("Device", "DeviceModel")
    )


def run(args: argparse.Namespace) -> int:
    sources = _sources(args.files)
    result = convert(sources, node=args.node)
    for note in result.notes:
        print(note, file=sys.stderr)
    header = ""
    if result.models or result.devices:
        header = f"# Converted to {API_GROUP}/v1beta1 by `edgetwin convert`.\n"
    text = header + yaml.safe_dump_all(
        result.documents, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    left_out = f"; {len(result.notes)} note(s) above" if result.notes else ""
    print(
        f"converted {result.models} DeviceModel(s) and {result.devices} Device(s){left_out}"
        + (f"; written to {args.output}" if args.output is not None else ""),
        file=sys.stderr,
    )
    return 0
