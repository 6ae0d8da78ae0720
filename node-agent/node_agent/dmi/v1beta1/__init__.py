"""KubeEdge's DMI messages and services (package ``v1beta1``), generated from ``api.proto`` beside this.

``api_pb2.py``, ``api_pb2.pyi`` and ``api_pb2_grpc.py`` are GENERATED: do not edit them. After a
change of ``api.proto`` regenerate them from the ``node-agent`` folder with::

    ../.venv/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \\
        node_agent/dmi/v1beta1/api.proto

tests/node_agent/dmi/test_proto.py checks that the committed modules match ``api.proto``. Importing
``api_pb2_grpc`` imports ``grpc``: only the DMI server and the mappers' side import it.
"""
