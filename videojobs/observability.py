"""One logger, one metrics and one tracer for the whole service (Powertools reads its settings from env).
The names they go by are in ``videojobs.metric_names``."""

from aws_lambda_powertools import Logger, Metrics, Tracer

from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# Only AWS calls are traced: patching HTTP clients too (httpx, requests, http.client) would add an
# X-Amzn-Trace-Id header to what a customer's webhook receiver gets.
TRACED_MODULES = ("botocore",)
tracer = Tracer(service=SERVICE_NAME, patch_modules=TRACED_MODULES)

TRACER_ENVIRONMENT = {"POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false", "POWERTOOLS_TRACER_CAPTURE_ERROR": "false"}
"""Set on every function and task: by default the tracer copies each handler's response and error into X-Ray,
where secrets (``whsec_`` secrets, tickets, presigned URLs) would stay 30 days for anyone with read access."""
