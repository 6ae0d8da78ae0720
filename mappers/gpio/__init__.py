"""The ``gpio`` mapper plugin: Raspberry Pi GPIO pins (LEDs, relays, PWM, buttons) through gpiozero.

Importing this package does not import gpiozero (~19 MB): the registry loads
``mappers.gpio.plugin`` only when a Device with ``protocolName: gpio`` needs it. On a Raspberry Pi
the real pin factory drives the pins; elsewhere gpiozero's mock pins stand in, so the LED and
traffic-light demos run on a laptop (``mappers.gpio.factory`` chooses, and says so in the log).
"""
