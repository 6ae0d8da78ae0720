"""The ``virtual`` mapper plugin: a simulated device in memory, and the example to copy."""

from mappers.virtual.device import SimulatedDevice, simulated
from mappers.virtual.plugin import VirtualConfig, VirtualMapper, VirtualVisitor

__all__ = ["SimulatedDevice", "VirtualConfig", "VirtualMapper", "VirtualVisitor", "simulated"]
