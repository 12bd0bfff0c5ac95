"""Chooses how tasks run: EdgeML state windows, the reward, and applying a frozen policy's actions."""
