"""Use cases: plain functions over explicit dependencies, called by the thin handlers in ``functions/``."""
