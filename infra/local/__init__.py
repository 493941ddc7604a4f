"""The service on moto in one process: ``python -m infra.local``, or ``LocalStack`` from tests."""

from infra.local.stack import LocalStack

__all__ = ["LocalStack"]
