"""Every code block of the README and docs/ runs as written, against the whole stack (``edgetwin up``).

Each page is read top to bottom in a folder of its own that stands for the reader's checkout
(``tests/fixtures/stack.py``), as one reader in one terminal would: files the page shows are
written where it says, shell commands run in order, Python blocks run as scripts. The docs are
written for the default ports; the stack runs on free ones, so ``127.0.0.1:1883`` and its siblings
are pointed at the stack's ports, and ``EDGETWIN_BROKER`` stands for the default broker address.
How each block is checked is in ``tests/docs/markdown.py``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.docs import shell
from tests.docs.markdown import REPO, SHELL, CodeBlock, code_blocks, pages
from tests.fixtures.stack import Stack
from twin.errors import InvalidManifest
from twin.manifests import parse_manifest

PAGES = pages()
MQTT_API_PAGE = REPO / "docs" / "mqtt-api.md"


def _problem(block: CodeBlock, text: str) -> str:
    return f"{block.where} ({block.lang}): {text}"


def _check_manifests(block: CodeBlock, stack: Stack, folder: Path) -> list[str]:
    """Device and DeviceModel documents load as the twin loads them and pass the API server's schema."""
    try:
        documents = [d for d in yaml.safe_load_all(block.text) if d is not None]
    except yaml.YAMLError as exc:
        return [_problem(block, f"not YAML: {exc}")]
    problems = []
    manifests = 0
    for document in documents:
        api_version = str(document.get("apiVersion", "")) if isinstance(document, dict) else ""
        if api_version == "devices.kubeedge.io/v1beta1":
            try:
                if parse_manifest(document, source=block.where) is None:
                    problems.append(_problem(block, f"not a Device or DeviceModel: {document.get('kind')!r}"))
            except InvalidManifest as exc:
                problems.append(_problem(block, str(exc)))
            manifests += 1
        elif block.marker != "file":
            problems.append(
                _problem(
                    block,
                    "a YAML block that is not a v1beta1 Device or DeviceModel needs a marker "
                    "(file NAME, or fragment: why)",
                )
            )
    if manifests and not problems:
        applied = subprocess.run(
            ["kubectl", "apply", "--dry-run=server", "-f", "-"],
            input=block.text,
            cwd=folder,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if applied.returncode != 0:
            problems.append(
                _problem(block, f"kubectl apply --dry-run=server refuses it: {applied.stderr.strip()}")
            )
    return problems


def _check_data(block: CodeBlock, stack: Stack, folder: Path) -> list[str]:
    if block.lang == "yaml":
        if block.marker == "fragment":
            try:
                list(yaml.safe_load_all(block.text))
            except yaml.YAMLError as exc:
                return [_problem(block, f"not YAML: {exc}")]
            return []
        return _check_manifests(block, stack, folder)
    try:
        if block.lang == "json":
            json.loads(block.text)
        elif block.lang == "toml":
            tomllib.loads(block.text)
    except ValueError as exc:
        return [_problem(block, f"does not parse: {exc}")]
    return []


def _run_python(block: CodeBlock, stack: Stack, folder: Path) -> list[str]:
    if block.marker:
        try:
            # a sketch may await at its top level, as in an async function's body
            compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            return [_problem(block, f"not Python: {exc}")]
        return []
    script = folder / f"block-{block.line}.py"
    script.write_text(stack.on_these_ports(block.text))
    try:
        result = subprocess.run(
            [sys.executable, script.name],
            cwd=folder,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [_problem(block, "still running after 90 s: a script in the docs must end")]
    if result.returncode != 0:
        return [_problem(block, f"exit code {result.returncode}:\n{result.stdout}{result.stderr}")]
    return []


def _run_shell(block: CodeBlock, stack: Stack, folder: Path) -> list[str]:
    text = block.text if block.marker else stack.on_these_ports(block.text)
    commands = shell.commands(text, console=block.lang == "console", first_line=block.line)
    if not commands:
        return [_problem(block, "no command in it: tag it text if it shows output")]
    if block.marker == "not run":
        checked = subprocess.run(
            ["bash", "-n"],
            input="\n".join(c.text for c in commands),
            text=True,
            capture_output=True,
            check=False,
        )
        return [_problem(block, f"not bash: {checked.stderr.strip()}")] if checked.returncode else []
    if block.marker == "parse-only":
        argvs = [argv for command in commands for argv in shell.edgetwin_argvs(command)]
        if not argvs:
            return [_problem(block, "parse-only, but no edgetwin command in it: use 'not run: why'")]
        problems = []
        for argv in argvs:
            error = shell.parse_error(argv)
            if error is not None:
                problems.append(_problem(block, f"edgetwin {shell.quoted(argv)}: {error}"))
        return problems
    serving = [c for c in commands if c.serves]
    if serving:
        return [
            _problem(
                block,
                f"line {c.line}: `{c.text}` runs until Ctrl-C: mark the block "
                "'parse-only: why' (tests that start it belong elsewhere)",
            )
            for c in serving
        ]
    problems = []
    for outcome in shell.run_commands(commands, folder, stack.env):
        problem = outcome.problem()
        if problem is not None:
            problems.append(
                f"{block.path.relative_to(REPO)}:{outcome.command.line}: `{outcome.command.text}`: "
                f"{problem}\n{outcome.output.strip()}"
            )
    return problems


def _blank_lines(text: str) -> str:
    return re.sub(r"\n[ \t]*(\n[ \t]*)+\n", "\n\n", text)


def _check_block(block: CodeBlock, stack: Stack, folder: Path) -> list[str]:
    if block.marker == "file":
        target = folder / block.argument
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(stack.on_these_ports(block.text))
    if block.marker == "excerpt":
        source = folder / block.argument
        if not source.is_file():
            return [_problem(block, f"an excerpt of {block.argument}, which no block before it made")]
        made = _blank_lines(source.read_text())
        # Methods shown on their own are dedented and two blank lines apart, as ruff formats a
        # Markdown block; in the file they sit in their class.
        shown = _blank_lines(textwrap.dedent(block.text).strip("\n"))
        if not any(textwrap.indent(shown, " " * depth) in made for depth in range(0, 13, 2)):
            return [_problem(block, f"not in {block.argument} as it is made today:\n{made}")]
        return []
    if block.marker.startswith("mqtt-"):
        if block.path != MQTT_API_PAGE:
            return [_problem(block, f"MQTT examples are checked against a twin only in {MQTT_API_PAGE.name}")]
        # requests may be malformed on purpose; test_mqtt_api.py sends each and compares the replies
        return [] if block.marker == "mqtt-request" else _check_data(block, stack, folder)
    if block.lang == "python":
        return _run_python(block, stack, folder)
    if block.lang in SHELL:
        return _run_shell(block, stack, folder)
    if block.lang in ("yaml", "json", "toml"):
        return _check_data(block, stack, folder)
    return []  # text, ini: shown, never run


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[p.name if p.parent == REPO else f"docs/{p.name}" for p in PAGES])
def test_every_code_block_of_the_page_runs_as_written(page: Path, up_stack: Stack) -> None:
    folder = up_stack.folder(page.stem.lower())
    problems: list[str] = []
    for block in code_blocks(page):
        problems += _check_block(block, up_stack, folder)
    assert not problems, "\n\n".join(problems)
