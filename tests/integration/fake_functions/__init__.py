"""Tiny handlers that stand in for the real functions, to test the local stack's machinery on its own."""
