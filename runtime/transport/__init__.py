"""Device <-> peer transport: the wire format, the device-side client and the link estimate."""
