"""The device daemon (``edgesplit serve``): config, service composition, systemd integration."""
