"""videojobs: a serverless API for long-running media jobs.

``from videojobs import Client`` is the Python SDK (``pip install videojobs[client]``). It is imported only when
asked for, so the Lambda functions, which import this package, never load the SDK's dependencies (httpx).
"""

from typing import Any

_SDK_NAMES = frozenset({"Client", "ApiError", "Job", "JobEvent", "Upload", "VideoJobsError", "verify_webhook"})


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from videojobs import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'videojobs' has no attribute {name!r}")
