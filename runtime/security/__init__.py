"""The secure link: CurveZMQ key files and the peer's check of which devices may connect."""
