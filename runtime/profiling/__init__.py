"""Per-board latency profiles of a bundle's segments, stored beside the bundle in ``profiles/<board>.json``."""
