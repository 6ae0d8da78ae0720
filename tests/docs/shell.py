"""The commands of a shell block: split as bash reads them, checked with edgetwin's parser, or run.

``sh``/``bash`` blocks are all commands; in ``console`` blocks the commands are the lines after
``$ `` and the rest is output. A command continued with ``\\`` is one command. A command whose
comment starts with "refused" or "fails" is expected to exit non-zero: the docs show what a
mistake looks like.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgetwin.cli import build_parser

__all__ = ["Command", "commands", "edgetwin_argvs", "parse_error", "run_commands"]

_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "(", ")"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Seconds a command that follows changes (until Ctrl-C) runs before it gets its Ctrl-C.
FOLLOW_SECONDS = 3


@dataclass(frozen=True)
class Command:
    text: str  # as bash gets it, continuation lines joined
    comment: str  # the trailing comment, if any
    line: int  # in the Markdown file

    @property
    def expects_failure(self) -> bool:
        return self.comment.lower().startswith(("refused", "fails"))

    @property
    def argvs(self) -> list[list[str]]:
        return _simple_commands(self.text)

    @property
    def serves(self) -> bool:
        """Starts something that runs until Ctrl-C (a server, the stack): never run by the docs test."""
        for argv in self.argvs:
            words = _without_globals(argv)
            if "--help" in words or "-h" in words:
                continue
            if argv[:1] == ["edgetwin"] and words[:1] in (["up"], ["node"], ["broker"], ["apiserver"]):
                return True
            if argv[:1] == ["edgetwin"] and (words[:2] == ["mapper", "run"] or words[:1] == ["cloud"]):
                return words[:2] != ["cloud", "token"]
            if argv[:2] in (["make", "run"], ["make", "docs"]):
                return True
        return False

    @property
    def follows(self) -> bool:
        """Prints changes until Ctrl-C: run for a few seconds, then interrupted."""
        for argv in self.argvs:
            words = _without_globals(argv)
            if argv[:1] == ["edgetwin"] and words[:2] == ["twin", "watch"] and "--count" not in words:
                return True
            if argv[:1] == ["kubectl"] and ("-w" in argv or "--watch" in argv):
                return True
        return False


def _without_globals(argv: list[str]) -> list[str]:
    words = argv[1:]
    if words[:1] == ["--log-level"]:
        return words[2:]
    if words and words[0].startswith("--log-level="):
        return words[1:]
    return words


def _split_comment(line: str) -> tuple[str, str]:
    """``code  # comment`` -> (code, comment), minding quotes."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def commands(text: str, *, console: bool, first_line: int) -> list[Command]:
    """The commands of a block's text, in order."""
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), first_line + 1):
        raw = line
        if not pending:
            if console:
                if not raw.startswith("$ "):
                    continue  # output
                raw = raw[2:]
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            start = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        logical = " ".join(part.strip() for part in pending)
        pending = []
        code, comment = _split_comment(logical)
        found.append(Command(code, comment, start))
    if pending:
        raise AssertionError(f"line {start}: a command continues past the end of its block")
    return found


def _simple_commands(text: str) -> list[list[str]]:
    """The simple commands of a command line, each without its variable assignments and redirections."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    simple: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if token in _OPERATORS or set(token) <= set(";&|<>()"):
            if token.startswith((">", "<")) or token.endswith((">", "<")):
                redirect = True  # the next word is a file, not an argument
            else:
                simple.append([])
            continue
        if redirect:
            redirect = False
            continue
        if not simple[-1] and _ASSIGNMENT.match(token):
            continue
        simple[-1].append(token)
    return [argv for argv in simple if argv]


def edgetwin_argvs(command: Command) -> list[list[str]]:
    """The arguments of each ``edgetwin`` in a command line."""
    return [argv[1:] for argv in command.argvs if argv[0] == "edgetwin"]


def parse_error(argv: list[str]) -> str | None:
    """What edgetwin's own parser says about these arguments; None if it takes them."""
    parser = build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return errors.getvalue().strip().splitlines()[-1]
    except argparse.ArgumentError as exc:  # pragma: no cover - exit_on_error is on
        return str(exc)
    return None


@dataclass(frozen=True)
class Outcome:
    command: Command
    returncode: int
    output: str

    def problem(self) -> str | None:
        """Why this outcome is not what the docs promise; None if it is."""
        if self.command.follows:
            if self.returncode != 124 or not self.output.strip():
                return "expected it to run and print until interrupted"
            return None
        if self.command.expects_failure:
            return None if self.returncode != 0 else "its comment says it is refused, but it succeeded"
        return None if self.returncode == 0 else f"exit code {self.returncode}"


def run_commands(
    block_commands: list[Command], cwd: Path, env: Mapping[str, str], *, timeout: float = 180
) -> list[Outcome]:
    """Run the commands in one bash, in order (exports and ``cd`` carry over), each output apart."""
    work = cwd / ".docs-test"
    work.mkdir(exist_ok=True)
    script = ["set -o pipefail", f'exec 3>"{work}/codes"']
    for index, command in enumerate(block_commands):
        (work / f"{index}.sh").write_text(command.text + "\n")
        output = f'"{work}/{index}.out"'
        if command.follows:
            run = f'timeout -s INT {FOLLOW_SECONDS} bash "{work}/{index}.sh"'
        else:
            run = f'source "{work}/{index}.sh"'
        script.append(f'{run} >{output} 2>&1 </dev/null; echo "{index} $?" >&3')
    (work / "block.sh").write_text("\n".join(script) + "\n")
    subprocess.run(
        ["bash", str(work / "block.sh")],
        cwd=cwd,
        env=dict(env),
        timeout=timeout,
        check=False,
        capture_output=True,
    )
    codes = dict(line.split() for line in (work / "codes").read_text().splitlines() if line.strip())
    outcomes = []
    for index, command in enumerate(block_commands):
        if str(index) not in codes:
            outcomes.append(Outcome(command, -1, "(never ran: an earlier command ended the shell)"))
            continue
        output = (work / f"{index}.out").read_text(errors="replace")
        outcomes.append(Outcome(command, int(codes[str(index)]), output))
    return outcomes


def quoted(argv: list[str]) -> str:
    return shlex.join(argv)
