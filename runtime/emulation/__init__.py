"""Emulated boards: pacing on-device compute and modelling energy as a named board would.

Everything here is labelled "emulated" wherever it shows up (JSON output, tables, the trace run
config): the numbers are calibrated from published whole-model timings, not measured on the board,
unless a measured profile (``edgesplit profile``) paces the segments (see ``segment_times``).
"""
from edgesplit.runtime.emulation.board import BoardProfile, EmulationError, load_emulated_board, profile_names
from edgesplit.runtime.emulation.pacing import Emulation

__all__ = ["BoardProfile", "Emulation", "EmulationError", "load_emulated_board", "profile_names"]
