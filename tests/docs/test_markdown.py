"""The docs checker itself: it refuses blocks it cannot check, reads shell as bash does, knows flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import shell
from tests.docs.markdown import REPO, MarkdownError, code_blocks

PAGE = REPO / "docs" / "example.md"


def blocks(text: str) -> list[tuple[str, str, str]]:
    return [(b.lang, b.marker, b.argument) for b in code_blocks(PAGE, text)]


def test_blocks_come_with_their_language_and_marker() -> None:
    text = (
        "Intro\n\n```sh\nedgetwin twin list\n```\n\n"
        "<!-- docs-test: parse-only: needs a Raspberry Pi -->\n```console\n$ edgetwin up\n```\n\n"
        "<!-- docs-test: file my-device.yaml -->\n```yaml\nkind: Device\n```\n"
        "  ```text\n  indented output\n  ```\n"
    )
    assert blocks(text) == [
        ("sh", "", ""),
        ("console", "parse-only", "needs a Raspberry Pi"),
        ("yaml", "file", "my-device.yaml"),
        ("text", "", ""),
    ]
    assert code_blocks(PAGE, text)[3].text == "indented output\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("```\nedgetwin up\n```\n", "tagged 'with nothing'"),
        ("```go\nfunc main() {}\n```\n", "tagged 'go'"),
        ("<!-- docs-test: not run -->\n```sh\nmake run\n```\n", "'not run' needs a reason"),
        ("<!-- docs-test: file -->\n```yaml\na: 1\n```\n", "'file' needs a name"),
        ("<!-- docs-test: parse-only: why -->\n```python\nx = 1\n```\n", "does not apply to a python block"),
        ("<!-- docs-test: skip: why -->\n```sh\nls\n```\n", "unknown docs-test marker"),
        ("<!-- docs-test: not run: why -->\n\n```sh\nls\n```\n", "just before its block"),
        ("```text\n$ edgetwin twin list\n```\n", "a command in a text block is never checked"),
        ("```sh\nedgetwin twin list\n", "never closed"),
    ],
)
def test_a_block_the_checker_cannot_classify_is_an_error_naming_the_line(text: str, says: str) -> None:
    with pytest.raises(MarkdownError, match=says):
        code_blocks(PAGE, text)


def test_output_in_a_text_block_is_fine_when_it_does_not_look_like_a_command() -> None:
    assert blocks("```text\nedgetwin is up.\n  kubectl is a command\nNAME  STATE\n```\n") == [
        ("text", "", "")
    ]


def test_shell_commands_are_read_as_bash_reads_them() -> None:
    text = (
        "# a comment line\n"
        "kubectl patch device led-light --type json \\\n"
        '  -p \'[{"op":"replace","value":"#1"}]\'      # switch it on\n'
        "edgetwin twin set t setpoint 99   # refused: above the maximum\n"
        "EDGETWIN_BROKER=mqtt://h:1 edgetwin twin list | head -n 3 > out.txt\n"
    )
    commands = shell.commands(text, console=False, first_line=10)
    assert [c.line for c in commands] == [12, 14, 15]
    assert commands[0].argvs == [
        ["kubectl", "patch", "device", "led-light", "--type", "json", "-p", '[{"op":"replace","value":"#1"}]']
    ]
    assert commands[0].comment == "switch it on" and not commands[0].expects_failure
    assert commands[1].expects_failure
    assert shell.edgetwin_argvs(commands[2]) == [["twin", "list"]]
    assert commands[2].argvs[1] == ["head", "-n", "3"]


def test_console_blocks_run_only_the_lines_after_the_prompt() -> None:
    text = "$ edgetwin twin get t\nPROPERTY  DESIRED\n$ kubectl get nodes \\\n    -o wide\nNAME\n"
    assert [c.text for c in shell.commands(text, console=True, first_line=0)] == [
        "edgetwin twin get t",
        "kubectl get nodes -o wide",
    ]


def test_servers_and_followers_are_told_apart_from_commands_that_end() -> None:
    def command(text: str) -> shell.Command:
        return shell.commands(text, console=False, first_line=0)[0]

    assert command("edgetwin up --mqtt-port 1").serves
    assert command("edgetwin node n --devices d").serves
    assert command("edgetwin mapper run modbus").serves
    assert command("edgetwin cloud --kubeconfig k").serves
    assert not command("edgetwin cloud token").serves
    assert not command("edgetwin up --help").serves
    assert not command("edgetwin mapper new x").serves
    assert command("edgetwin twin watch").follows
    assert not command("edgetwin twin watch --count 3").follows
    assert command("kubectl get devices -w").follows


def test_edgetwin_arguments_are_checked_by_its_own_parser() -> None:
    assert shell.parse_error(["twin", "set", "t", "setpoint", "22"]) is None
    assert shell.parse_error(["up", "--help"]) is None
    assert "unrecognized arguments: --mqtt-prot" in str(shell.parse_error(["up", "--mqtt-prot", "1"]))
    assert "invalid int value" in str(shell.parse_error(["up", "--mqtt-port", "many"]))
    assert "invalid choice" in str(shell.parse_error(["twin", "show", "t"]))


def test_commands_run_in_one_shell_with_exports_carried_and_each_outcome_judged(tmp_path: Path) -> None:
    text = (
        "export GREETING=hello\n"
        "echo $GREETING there\n"
        "false   # fails: on purpose\n"
        "true    # fails: but it does not\n"
        "exit_code_three() { return 3; }; exit_code_three\n"
    )
    outcomes = shell.run_commands(
        shell.commands(text, console=False, first_line=0), tmp_path, {"PATH": "/usr/bin:/bin"}
    )
    assert outcomes[1].output == "hello there\n"
    assert [o.problem() for o in outcomes] == [
        None,
        None,
        None,
        "its comment says it is refused, but it succeeded",
        "exit code 3",
    ]
