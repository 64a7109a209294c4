"""Drivers for physical robots and their sensors: cameras, the serial RC car (LNC line protocol,
``SERIAL_PROTOCOL.md``, reference firmware) and the MAVLink drone. Each driver converts the
policy's FLU actions to its wire format in exactly one function."""
