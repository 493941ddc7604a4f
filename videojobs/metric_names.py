"""Names the service's telemetry goes by: Powertools' service and namespace, and each business metric.

Emitted through ``videojobs.observability`` and read by ``infra/monitoring.py`` (alarms, dashboard) from here, so
a renamed metric cannot leave the dashboard watching a name nothing writes."""

SERVICE_NAME = "videojobs"
"""Powertools' ``service``: the logs' service field and the metrics' ``service`` dimension."""
METRICS_NAMESPACE = "VideoJobs"

JOBS_SUBMITTED = "JobsSubmitted"
JOBS_COMPLETED = "JobsCompleted"
JOBS_FAILED = "JobsFailed"
JOBS_CANCELLED = "JobsCancelled"
JOB_DURATION = "JobDuration"
"""Seconds from a job's first claim to its completion, emitted by the worker for each completed job."""
WEBHOOK_DELIVERIES_SUCCEEDED = "WebhookDeliveriesSucceeded"
WEBHOOK_DELIVERIES_FAILED = "WebhookDeliveriesFailed"
"""One count per webhook delivery attempt, by outcome: the deliver function emits them."""
UNREADABLE_MESSAGES = "UnreadableMessages"
"""One count per queue message whose body is not its queue's contract (``videojobs.queues.read_message``)."""
TASK_PROTECTION_FAILED = "TaskProtectionFailed"
"""One count per refused (or unanswered) ECS scale-in protection request of the long-jobs consumer."""
