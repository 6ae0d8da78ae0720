"""The audit log: one kube-apiserver audit event per resource request, with the verb RBAC names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fixtures.apiserver import ApiServerThread, make_kubectl
from tests.fixtures.processes import run_cli


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def request_of(event: dict[str, Any]) -> tuple[str, str, str, str, int]:
    ref = event["objectRef"]
    resource = f"{ref['resource']}/{ref['subresource']}" if "subresource" in ref else ref["resource"]
    return event["verb"], ref["apiGroup"], resource, ref.get("name", ""), event["responseStatus"]["code"]


def test_each_resource_request_is_logged_with_its_verb_object_and_code(tmp_path: Path) -> None:
    audit = tmp_path / "audit" / "audit.log"
    server = ApiServerThread(tmp_path / "data", audit_log=audit)
    server.start()
    try:
        kubectl = make_kubectl(server, tmp_path / "cache")
        kubectl.run("create", "configmap", "settings", "--from-literal=a=1")
        kubectl.run("get", "configmaps")
        kubectl.run("get", "configmap", "settings")
        kubectl.run("patch", "configmap", "settings", "--type=merge", "-p", '{"data":{"a":"2"}}')
        kubectl.run("get", "configmap", "nothing", check=False)
        kubectl.run("get", "configmaps", "--watch", "--request-timeout=1s", check=False)
        kubectl.run("delete", "configmap", "settings", "--wait=false")
        kubectl.run("delete", "configmaps", "--all")
    finally:
        server.stop()
    logged = events(audit)
    assert all(e["apiVersion"] == "audit.k8s.io/v1" and e["kind"] == "Event" for e in logged)
    assert all(e["userAgent"].startswith("kubectl/") and e["sourceIPs"] == ["127.0.0.1"] for e in logged)
    requests = [request_of(e) for e in logged]
    for expected in [
        ("create", "", "configmaps", "", 201),
        ("list", "", "configmaps", "", 200),
        ("get", "", "configmaps", "settings", 200),
        ("patch", "", "configmaps", "settings", 200),
        ("get", "", "configmaps", "nothing", 404),
        ("watch", "", "configmaps", "", 200),
        ("delete", "", "configmaps", "settings", 200),
    ]:
        assert expected in requests, (expected, requests)
    watch = next(e for e in logged if e["verb"] == "watch")
    assert watch["stage"] == "ResponseStarted" and "watch=true" in watch["requestURI"]
    assert {e["objectRef"].get("namespace") for e in logged} == {"default"}


def test_an_audit_log_that_cannot_be_written_stops_the_command_with_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = run_cli(
        "apiserver", "--data-dir", str(tmp_path / "data"), "--port", "0",
        "--audit-log", str(blocked / "audit.log"),
    )  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot write the audit log" in last and str(blocked / "audit.log") in last
