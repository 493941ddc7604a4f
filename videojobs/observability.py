"""One logger, one metrics and one tracer for the whole service (Powertools reads its settings from env)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="videojobs")
metrics = Metrics(namespace="VideoJobs", service="videojobs")
tracer = Tracer(service="videojobs")
