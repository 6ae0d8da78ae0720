"""The Modbus mapper (TCP and RTU, pymodbus): visitor decoding, block reads, the plugin.

``mappers.modbus.decoding`` and ``mappers.modbus.planner`` are pure; pymodbus is imported only by
``link`` (and the ``simulator``), which the plugin loads when a Modbus device exists. The entry
point ``modbus = "mappers.modbus.plugin:ModbusMapper"`` names the plugin class directly, so
importing this package costs nothing.
"""
