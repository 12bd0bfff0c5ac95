"""Frozen policies evaluated with numpy alone (filled by the network issue)."""
