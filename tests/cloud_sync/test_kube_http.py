"""``KubeApi.call`` on the asyncio transport (``cloud_sync.kube_http``) against the embedded API
server: authenticated by a bearer token, by a client certificate, by an exec plugin's token that the
client's refresh hook renews; the API's refusals mapped to the same errors as the ``kubernetes``
client's threads map them; and a server that is not there, not trusted, or silent, as
``ApiUnavailable`` with the reason in its message."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud_sync import KubeApi
from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiRefused, ApiUnavailable
from cloud_sync.kube import MERGE_PATCH, Obj
from cloud_sync.resources import DEVICES
from tests.cloud_sync.conftest import device_yaml
from tests.fixtures.apiserver import CRD_DIR, ApiServerThread
from tests.fixtures.certs import TlsFiles, make_tls_files


def kubeconfig(path: Path, server: str, ca: Path, user: dict[str, Any]) -> Path:
    """A kubeconfig with one cluster (``server``, trusted through ``ca``) and one ``user``."""
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def certificate_user(tls: TlsFiles) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(tls.client_cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(tls.client_key.read_bytes()).decode(),
    }


@pytest.fixture(scope="module")
def client_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("client-tls"))


@pytest.fixture(scope="module")
def certificate_apiserver(
    tmp_path_factory: pytest.TempPathFactory, client_tls: TlsFiles
) -> Iterator[ApiServerThread]:
    """An API server that also admits clients with a certificate signed by ``client_tls.ca``."""
    server = ApiServerThread(tmp_path_factory.mktemp("apiserver"), crds=(CRD_DIR,), client_ca=client_tls.ca)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Callable[..., KubeApi]]:
    """``KubeApi.from_config`` for a test, each one closed at the end."""
    apis: list[KubeApi] = []

    def open_api(path: Path, **options: Any) -> KubeApi:
        api = KubeApi.from_config(path, **options)
        apis.append(api)
        return api

    yield open_api
    for api in apis:
        await api.aclose()


async def new_device(api: KubeApi, name: str) -> Obj:
    return await api.call("POST", DEVICES.path("default"), body=yaml.safe_load(device_yaml(name, "node-a")))


def status_patch(version: str, value: str) -> dict[str, Any]:
    twin = {"propertyName": "temperature", "reported": {"value": value, "metadata": {"timestamp": "1"}}}
    return {"metadata": {"resourceVersion": version}, "status": {"twins": [twin]}}


async def test_status_writes_go_over_the_asyncio_transport_with_the_kubeconfig_token(
    module_apiserver_with_crds: ApiServerThread, opened: Callable[..., KubeApi]
) -> None:
    api = opened(module_apiserver_with_crds.kubeconfig)
    assert api.transport == "aiohttp"
    created = await new_device(api, "token-1")
    version = created["metadata"]["resourceVersion"]
    for step in range(3):  # each on a kept-alive connection of the pool
        answer = await api.call(
            "PATCH",
            DEVICES.path("default", "token-1", "status"),
            body=status_patch(version, str(step)),
            content_type=MERGE_PATCH,
        )
        version = answer["metadata"]["resourceVersion"]
    device = await api.get(DEVICES.path("default", "token-1"))
    assert device["status"]["twins"][0]["reported"]["value"] == "2"
    listed, _ = await api.list_all(DEVICES.path("default"), {"labelSelector": "nothing=here"})
    assert listed == []


async def test_a_client_certificate_authenticates_without_a_token(
    certificate_apiserver: ApiServerThread,
    module_apiserver_with_crds: ApiServerThread,
    client_tls: TlsFiles,
    opened: Callable[..., KubeApi],
    tmp_path: Path,
) -> None:
    server = certificate_apiserver
    path = kubeconfig(tmp_path / "cert", server.url, server.data_dir / "ca.crt", certificate_user(client_tls))
    api = opened(path)
    assert api.transport == "aiohttp"
    created = await new_device(api, "cert-1")
    version = created["metadata"]["resourceVersion"]
    await api.call(
        "PATCH",
        DEVICES.path("default", "cert-1", "status"),
        body=status_patch(version, "7"),
        content_type=MERGE_PATCH,
    )
    assert (await api.get(DEVICES.path("default", "cert-1")))["status"]["twins"][0]["reported"][
        "value"
    ] == "7"
    # The certificate is what let it in: a server that does not take certificates refuses it.
    other = module_apiserver_with_crds
    refused = opened(
        kubeconfig(tmp_path / "elsewhere", other.url, other.data_dir / "ca.crt", certificate_user(client_tls))
    )
    with pytest.raises(ApiRefused) as caught:
        await refused.get("/api/v1/namespaces")
    assert caught.value.status == 401


async def test_a_token_from_an_exec_plugin_is_renewed_through_the_clients_refresh_hook(
    module_apiserver_with_crds: ApiServerThread, opened: Callable[..., KubeApi], tmp_path: Path
) -> None:
    server = module_apiserver_with_crds
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token")
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, pathlib, sys\n"
        "token = pathlib.Path(sys.argv[1]).read_text()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential',"
        " 'status': {'token': token, 'expirationTimestamp': '2000-01-01T00:00:00Z'}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(token_file)],
            "interactiveMode": "Never",
        }
    }
    path = kubeconfig(tmp_path / "exec", server.url, server.data_dir / "ca.crt", user)
    api = opened(path)  # loaded with the wrong token, which has expired already
    token_file.write_text(server.server.token)
    listed = await api.get("/api/v1/namespaces")  # the hook ran the plugin again before sending
    assert listed["kind"] == "NamespaceList"


@pytest.mark.parametrize("transport", ["aiohttp", "threads"])
async def test_conflicts_missing_objects_and_invalid_ones_raise_the_same_errors_either_way(
    module_apiserver_with_crds: ApiServerThread, opened: Callable[..., KubeApi], transport: str
) -> None:
    api = opened(module_apiserver_with_crds.kubeconfig)

    async def call(method: str, path: str, body: Any = None, content_type: str | None = None) -> Obj:
        if transport == "aiohttp":
            return await api.call(method, path, body=body, content_type=content_type)
        return await api.run(lambda: api.request(method, path, body=body, content_type=content_type))

    name = f"errors-{transport}"
    created = await call("POST", DEVICES.path("default"), yaml.safe_load(device_yaml(name, "node-a")))
    stale = created["metadata"]["resourceVersion"]
    status = DEVICES.path("default", name, "status")
    await call("PATCH", status, status_patch(stale, "1"), MERGE_PATCH)

    errors: list[ApiError] = []
    for method, path, body, content_type in [
        ("PATCH", status, status_patch(stale, "2"), MERGE_PATCH),  # written since: 409
        ("POST", DEVICES.path("default"), yaml.safe_load(device_yaml(name, "node-a")), None),  # exists: 409
        ("PATCH", DEVICES.path("default", "nowhere", "status"), status_patch("1", "3"), MERGE_PATCH),  # 404
        ("PATCH", DEVICES.path("default", name), {"spec": {"nodeName": 5}}, MERGE_PATCH),  # schema: 422
    ]:
        with pytest.raises(ApiError) as caught:
            await call(method, path, body, content_type)
        errors.append(caught.value)
    conflict, exists, missing, invalid = errors
    assert type(conflict) is ApiConflict and conflict.status == 409 and not conflict.already_exists
    assert type(exists) is ApiConflict and exists.already_exists
    assert type(missing) is ApiNotFound and missing.status == 404
    assert type(invalid) is ApiRefused and (invalid.status, invalid.reason) == (422, "Invalid")
    assert "nodeName" in str(invalid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_api_server_that_is_not_listening_is_unavailable_connection_refused(
    module_apiserver_with_crds: ApiServerThread, opened: Callable[..., KubeApi], tmp_path: Path
) -> None:
    server = module_apiserver_with_crds
    path = kubeconfig(
        tmp_path / "down", f"https://127.0.0.1:{free_port()}", server.data_dir / "ca.crt", {"token": "t"}
    )
    with pytest.raises(ApiUnavailable) as caught:
        await opened(path).get("/api/v1/namespaces")
    assert caught.value.status == 0
    assert "does not answer" in str(caught.value) and "refused" in str(caught.value).lower()


async def test_a_server_certificate_from_an_untrusted_ca_is_a_named_tls_failure(
    module_apiserver_with_crds: ApiServerThread,
    client_tls: TlsFiles,
    opened: Callable[..., KubeApi],
    tmp_path: Path,
) -> None:
    server = module_apiserver_with_crds
    path = kubeconfig(
        tmp_path / "stranger", server.url, client_tls.stranger_ca, {"token": server.server.token}
    )
    with pytest.raises(ApiUnavailable) as caught:
        await opened(path).get("/api/v1/namespaces")
    assert "failed TLS verification" in str(caught.value)
    assert "certificate verify failed" in str(caught.value)


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that takes connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_api_server_that_never_answers_is_unavailable_after_the_timeout(
    opened: Callable[..., KubeApi], tmp_path: Path, client_tls: TlsFiles
) -> None:
    async with silent_server() as port:
        path = kubeconfig(tmp_path / "silent", f"http://127.0.0.1:{port}", client_tls.ca, {"token": "t"})
        with pytest.raises(ApiUnavailable) as caught:
            await opened(path, timeout=0.2).get("/api/v1/namespaces")
    assert "did not answer GET /api/v1/namespaces within 0.2 s" in str(caught.value)


async def test_a_proxy_the_asyncio_transport_cannot_use_sends_through_the_clients_threads(
    module_apiserver_with_crds: ApiServerThread,
) -> None:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = module_apiserver_with_crds.url
    configuration.ssl_ca_cert = str(module_apiserver_with_crds.data_dir / "ca.crt")
    configuration.proxy = f"https://127.0.0.1:{free_port()}"  # nobody listens there
    configuration.proxy_ssl_context = ssl.create_default_context()  # only urllib3 takes this
    api = KubeApi(client.ApiClient(configuration))
    try:
        assert api.transport == "threads"
        with pytest.raises(ApiUnavailable, match="does not answer"):
            await api.get("/api/v1/namespaces")
    finally:
        await api.aclose()
