"""edgesplit on-device runtime: bundles, segment backends, the executor, and the board CLI."""
__version__ = "0.1.0"
