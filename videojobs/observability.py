"""One logger, one metrics and one tracer for the whole service (Powertools reads its settings from env).
The names they go by are in ``videojobs.metric_names``.

The tracer is built on first use (``get_tracer``, or a ``traced`` handler's first call): it loads the X-Ray SDK
and patches botocore, about a boto3 import's worth of time that functions which trace nothing (the queue and
stream consumers) need not pay. A SnapStart function builds it before its snapshot (``traced`` registers that).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

from videojobs import snapstart
from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# Only AWS calls are traced: patching HTTP clients too (httpx, requests, http.client) would add an
# X-Amzn-Trace-Id header to what a customer's webhook receiver gets.
TRACED_MODULES = ("botocore",)

TRACER_ENVIRONMENT = {"POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false", "POWERTOOLS_TRACER_CAPTURE_ERROR": "false"}
"""Set on every function and task: by default the tracer copies each handler's response and error into X-Ray,
where secrets (``whsec_`` secrets, tickets, presigned URLs) would stay 30 days for anyone with read access."""

Handler = TypeVar("Handler", bound=Callable[..., Any])


@cache
def get_tracer() -> Tracer:
    """The service's tracer (from the first call on, botocore's calls are X-Ray subsegments)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE_NAME, patch_modules=TRACED_MODULES)


def traced(handler: Handler) -> Handler:
    """``Tracer.capture_lambda_handler``, with the tracer built at the first invocation or before a snapshot."""
    snapstart.before_snapshot(get_tracer)

    @cache
    def capturing() -> Callable[..., Any]:
        return get_tracer().capture_lambda_handler(handler)

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        return capturing()(event, context)

    return wrapper  # type: ignore[return-value]  # same signature as ``handler``
