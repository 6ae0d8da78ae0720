"""The BLE mapper (bleak): GATT characteristics as twin properties, and a simulated adapter.

``decoding``, ``config`` and ``slots`` are pure; bleak is imported only by ``link``, ``backend``,
``simulator``, ``plugin`` and ``discovery``, which load when a BLE device (or ``edgetwin discover
ble``) needs them. The entry point ``ble = "mappers.ble.plugin:BleMapper"`` names the plugin class
directly, so importing this package costs nothing (bleak alone is ~21 MB of memory).
"""
