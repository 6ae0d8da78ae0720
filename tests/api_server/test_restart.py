"""What survives a restart of the API server: objects, CRDs, credentials, resourceVersions, watches."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.apiserver import ApiServerThread, kube_api_client

GROUP, VERSION = "devices.kubeedge.io", "v1beta1"
MakeServer = Callable[..., ApiServerThread]


def device(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {"deviceModelRef": {"name": "thermostat-model"}, "nodeName": "edge-node-1"},
    }


@pytest.fixture
def custom_for() -> Iterator[Callable[[ApiServerThread], client.CustomObjectsApi]]:
    clients: list[client.ApiClient] = []

    def make(server: ApiServerThread) -> client.CustomObjectsApi:
        api = kube_api_client(server)
        clients.append(api)
        return client.CustomObjectsApi(api)

    yield make
    for api in clients:
        api.close()


@dataclass
class Recorder:
    """A watch stream consumed by a thread; events as (type, name, resourceVersion)."""

    custom: client.CustomObjectsApi
    resource_version: str
    stop_on: tuple[str, str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    error: BaseException | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)
    watch: watch.Watch = field(default_factory=watch.Watch)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            for event in self.watch.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                "devices",
                resource_version=self.resource_version,
                timeout_seconds=60,
                **self.kwargs,
            ):
                meta = event["object"]["metadata"]
                with self.changed:
                    self.events.append((event["type"], meta.get("name", ""), meta["resourceVersion"]))
                    self.changed.notify_all()
                if self.stop_on == (event["type"], meta.get("name", "")):
                    self.watch.stop()
        except ApiException as exc:
            self.error = exc

    def wait_for(self, kind: str, name: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(e[:2] == (kind, name) for e in self.events), timeout=30)


def test_objects_crds_credentials_and_resource_version_survive_a_restart(
    apiserver_factory: MakeServer, custom_for: Callable[[ApiServerThread], client.CustomObjectsApi]
) -> None:
    server = apiserver_factory()
    custom = custom_for(server)
    created = [
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device(f"d{i}"))
        for i in range(3)
    ]
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", "devices", "d1", {"status": {"state": "online"}}
    )
    before = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "devices")
    kubeconfig = server.kubeconfig.read_text()

    server.restart()

    assert server.kubeconfig.read_text() == kubeconfig  # same port, token and CA: old clients keep working
    after = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "devices")
    assert after["items"] == before["items"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    newer = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device("d3"))
    assert int(newer["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert [d["metadata"]["uid"] for d in after["items"]] == [d["metadata"]["uid"] for d in created]


def test_watch_resumes_from_its_resource_version_across_a_restart(
    apiserver_factory: MakeServer, custom_for: Callable[[ApiServerThread], client.CustomObjectsApi]
) -> None:
    server = apiserver_factory()
    custom = custom_for(server)
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device("kept"))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "devices")
    first = Recorder(custom, listed["metadata"]["resourceVersion"])
    thread = first.start()
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device("doomed"))
    first.wait_for("ADDED", "doomed")

    server.restart()  # ends the stream; the client holds the last resourceVersion it saw
    thread.join(30)
    assert first.error is None
    assert [e[:2] for e in first.events] == [("ADDED", "doomed")]
    assert first.watch.resource_version == first.events[-1][2]

    # changes made while nobody watches are delivered when the watch resumes
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "devices", "kept", {"spec": {"nodeName": "n2"}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "devices", "doomed")
    resumed = Recorder(custom, first.watch.resource_version, stop_on=("DELETED", "doomed"))
    resumed.start().join(30)
    assert resumed.error is None
    assert [e[:2] for e in resumed.events] == [("MODIFIED", "kept"), ("DELETED", "doomed")]
    versions = [int(e[2]) for e in first.events + resumed.events]
    assert versions == sorted(versions)


def test_watch_from_a_compacted_resource_version_gets_410_and_recovers_by_relisting(
    apiserver_factory: MakeServer, custom_for: Callable[[ApiServerThread], client.CustomObjectsApi]
) -> None:
    server = apiserver_factory(history=10)
    custom = custom_for(server)
    old = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device("busy"))
    for index in range(30):
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", "devices", "busy", {"status": {"lastOnlineTime": str(index)}}
        )
    server.restart()  # the compaction point is persisted too

    expired = Recorder(custom, old["metadata"]["resourceVersion"])
    expired.start().join(30)
    assert isinstance(expired.error, ApiException)
    assert expired.error.status == 410

    relisted = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "devices")
    recovered = Recorder(custom, relisted["metadata"]["resourceVersion"], stop_on=("MODIFIED", "busy"))
    thread = recovered.start()
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", "devices", "busy", {"status": {"state": "online"}}
    )
    thread.join(30)
    assert [e[:2] for e in recovered.events] == [("MODIFIED", "busy")]


def test_watch_sends_bookmarks_when_asked(
    apiserver_factory: MakeServer, custom_for: Callable[[ApiServerThread], client.CustomObjectsApi]
) -> None:
    server = apiserver_factory(bookmark_interval=0.1)
    custom = custom_for(server)
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "devices", device("quiet"))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "devices")
    recorder = Recorder(
        custom,
        listed["metadata"]["resourceVersion"],
        stop_on=("BOOKMARK", ""),
        kwargs={"allow_watch_bookmarks": True},
    )
    recorder.start().join(30)
    assert recorder.events == [("BOOKMARK", "", listed["metadata"]["resourceVersion"])]
