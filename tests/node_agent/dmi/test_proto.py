"""The committed DMI modules are what their .proto files generate, with KubeEdge's service names."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

from node_agent.dmi.v1beta1 import api_pb2, manager_service_pb2, mapper_service_pb2

NODE_AGENT = Path(api_pb2.__file__).resolve().parents[3]
GENERATED = [api_pb2, manager_service_pb2, mapper_service_pb2]


@pytest.mark.parametrize("module", GENERATED, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_generated_modules_match_their_proto(module: ModuleType, tmp_path: Path) -> None:
    committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    out = tmp_path / "api.desc"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--descriptor_set_out={out}", committed.name],
        cwd=NODE_AGENT,
        check=True,
    )
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    # protoc adds each field's json_name to a descriptor set; generated modules leave it out.
    for message in _messages(compiled.message_type):
        for field in message.field:
            field.ClearField("json_name")
    assert committed == compiled, "regenerate node_agent/dmi/v1beta1 (see its __init__.py)"


def _messages(messages: Iterable[descriptor_pb2.DescriptorProto]) -> Iterator[descriptor_pb2.DescriptorProto]:
    for message in messages:
        yield message
        yield from _messages(message.nested_type)


def test_services_and_methods_carry_kubeedges_names() -> None:
    services = {
        s.full_name: [m.name for m in s.methods]
        for module in GENERATED
        for s in module.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "v1beta1.DeviceManagerService": ["MapperRegister", "ReportDeviceStatus", "ReportDeviceStates"],
        "v1beta1.DeviceMapperService": [
            "RegisterDevice",
            "RemoveDevice",
            "UpdateDevice",
            "CreateDeviceModel",
            "RemoveDeviceModel",
            "UpdateDeviceModel",
            "GetDevice",
        ],
    }
    # A few field numbers a mapper relies on (wire compatibility with KubeEdge's api.proto).
    fields = api_pb2.DeviceProperty.DESCRIPTOR.fields_by_name
    assert {n: fields[n].number for n in ("name", "desired", "visitors", "reportCycle", "collectCycle")} == {
        "name": 1,
        "desired": 2,
        "visitors": 3,
        "reportCycle": 4,
        "collectCycle": 5,
    }
    assert api_pb2.MapperInfo.DESCRIPTOR.fields_by_name["address"].number == 5
    assert api_pb2.ReportDeviceStatusRequest.DESCRIPTOR.fields_by_name["deviceNamespace"].number == 3
