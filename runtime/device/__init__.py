"""The device side of a run: one task at a time through controller, executor and peer."""
