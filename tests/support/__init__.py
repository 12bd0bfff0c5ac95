"""Helpers shared by the tests (pytest puts tests/ on sys.path: ``from support.x import y``)."""
