"""The reliability suite reuses the end-to-end session stack (``python -m infra.local`` over real HTTP).

Modules that need a stack with other settings (test_worker_reliability.py) define their own ``stack``/``api``.
"""

from tests.e2e.conftest import api, stack

__all__ = ["api", "stack"]
