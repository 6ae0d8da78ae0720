"""The OPC UA mapper (asyncua): reads, writes and subscriptions, secured endpoints, discovery.

``mappers.opcua.config`` is pure; asyncua (~40 MB once imported) is imported only by ``link``,
``convert``, ``simulator`` and ``discovery``, which load when an OPC UA device (or an
``edgetwin discover opc.tcp://…``) needs them. The entry point
``opcua = "mappers.opcua.plugin:OpcuaMapper"`` names the plugin class directly, so importing this
package costs nothing.
"""
