"""KubeEdge's DMI messages and services (package ``v1beta1``), generated from the ``.proto`` beside this.

``api.proto`` holds the messages, ``manager_service.proto`` the service the edge serves
(``DeviceManagerService``) and ``mapper_service.proto`` the one each mapper serves
(``DeviceMapperService``). The ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` modules are
GENERATED: do not edit them. After a change of a ``.proto`` regenerate them from the ``node-agent``
folder with::

    ../.venv/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \\
        node_agent/dmi/v1beta1/api.proto
    ../.venv/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \\
        node_agent/dmi/v1beta1/manager_service.proto node_agent/dmi/v1beta1/mapper_service.proto

tests/node_agent/dmi/test_proto.py checks that the committed modules match the ``.proto`` files.
Importing a ``*_pb2_grpc`` module imports ``grpc``: only the DMI server and the mappers' side do.
"""
