"""The fenced code blocks of the README and docs/, and what each one says about how to check it.

A block is checked by its language tag, unless an HTML comment on the line just before it says
otherwise (the comment renders as nothing on the site)::

    <!-- docs-test: parse-only: starts a server on the default ports -->
    ```sh
    edgetwin apiserver
    ```

Markers: ``not run: REASON``, ``parse-only: REASON``, ``fragment: REASON`` (each needs its
reason), ``file NAME`` (the block is written to NAME in the page's folder for the blocks after it),
``excerpt NAME`` (the block appears verbatim in NAME, made by an earlier block), and
``mqtt-request TOPIC`` / ``mqtt-reply TOPIC`` / ``mqtt-event TOPIC`` (JSON bodies of the MQTT API,
sent to and compared with a real twin by ``test_mqtt_api.py``). A block whose language and marker
say nothing the checker knows is an error, so nothing goes unchecked by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "MARKERS",
    "CodeBlock",
    "MarkdownError",
    "code_blocks",
    "pages",
]

REPO = Path(__file__).resolve().parents[2]

SHELL = frozenset({"sh", "bash", "shell", "console"})
#: Tags of blocks that are shown, never run: output samples, diagrams, configuration of other programs.
SHOWN = frozenset({"text", "ini"})
LANGUAGES = SHELL | SHOWN | {"python", "yaml", "json", "toml"}

#: Marker kind -> (languages it applies to, whether it takes a reason after a colon).
MARKERS: dict[str, tuple[frozenset[str], bool]] = {
    "not run": (SHELL | {"python"}, True),
    "parse-only": (SHELL, True),
    "fragment": (frozenset({"yaml", "json"}), True),
    "file": (frozenset({"yaml", "json", "toml", "python", "text", "ini"}), False),
    "excerpt": (frozenset({"python", "yaml", "toml", "text"}), False),
    "mqtt-request": (frozenset({"json"}), False),
    "mqtt-reply": (frozenset({"json"}), False),
    "mqtt-event": (frozenset({"json"}), False),
}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[^\s`]*)\s*$")
_COMMAND = re.compile(
    r"^\s*(\$ |kubectl (get|apply|patch|describe|wait|delete|create|edit|explain|logs)(\s|$)"
    r"|edgetwin (up|node|cloud|broker|twin|mapper|discover|convert|apiserver)(\s|$))"
)
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


class MarkdownError(AssertionError):
    """A block the checker cannot classify, or a marker it does not understand: named by file and line."""


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str = ""  # one of MARKERS, or "" for the language's own check
    argument: str = ""  # the reason, file name or topic of the marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """The README and every page of the site, in a stable order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _marker(path: Path, line: int, text: str, lang: str) -> tuple[str, str]:
    match = _MARKER.match(text)
    if match is None:
        return "", ""
    body = match.group("body")
    for kind, (languages, reasoned) in MARKERS.items():
        if body == kind or body.startswith((f"{kind}:", f"{kind} ")):
            argument = body[len(kind) :].strip()
            if reasoned:
                if not argument.startswith(":") or not argument[1:].strip():
                    raise MarkdownError(
                        f"{path}:{line}: '{kind}' needs a reason: <!-- docs-test: {kind}: why -->"
                    )
                argument = argument[1:].strip()
            elif not argument:
                raise MarkdownError(f"{path}:{line}: '{kind}' needs a name: <!-- docs-test: {kind} NAME -->")
            if lang not in languages:
                raise MarkdownError(f"{path}:{line}: '{kind}' does not apply to a {lang or 'untagged'} block")
            return kind, argument
    raise MarkdownError(f"{path}:{line}: unknown docs-test marker {body!r} (known: {', '.join(MARKERS)})")


def code_blocks(path: Path, text: str | None = None) -> list[CodeBlock]:
    """Every fenced block of a Markdown file with its marker; ``MarkdownError`` for one it cannot classify."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            if _MARKER.match(lines[index]) and not (
                index + 1 < len(lines) and _FENCE.match(lines[index + 1])
            ):
                raise MarkdownError(f"{path}:{index + 1}: a docs-test marker must be just before its block")
            index += 1
            continue
        start, fence, lang = index, opening.group("fence"), opening.group("lang").lower()
        indent = len(opening.group("indent"))
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence[0] * len(fence)):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        if index == len(lines):
            raise MarkdownError(f"{path}:{start + 1}: the block opened here is never closed")
        index += 1
        if lang not in LANGUAGES:
            raise MarkdownError(
                f"{path}:{start + 1}: a block tagged {lang or 'with nothing'!r} cannot be checked: tag it "
                f"{', '.join(sorted(LANGUAGES))} (text and ini for what is shown, never run)"
            )
        kind, argument = _marker(path, start, lines[start - 1], lang) if start else ("", "")
        block = CodeBlock(path, start + 1, lang, "\n".join(body) + "\n", kind, argument)
        if lang in SHOWN and not kind:
            _check_shown(block)
        blocks.append(block)
    return blocks


def _check_shown(block: CodeBlock) -> None:
    """A ``text`` block of commands would escape every check: commands belong in ``sh`` or ``console``."""
    for number, line in enumerate(block.text.splitlines(), block.line + 1):
        if _COMMAND.match(line):
            raise MarkdownError(
                f"{block.path}:{number}: a command in a {block.lang} block is never checked: "
                "put commands in an sh or console block (with a parse-only marker if they cannot run here)"
            )
