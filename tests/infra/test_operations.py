"""Operations: every function and queue of the construct has its alarms, alarms reach the topic, and the
dashboard shows the job metrics the handlers emit."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from infra import monitoring
from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from videojobs import metric_names, wiring
from videojobs.observability import metrics


def _alarms(synth: Synth) -> list[dict[str, Any]]:
    """The monitoring alarms (not, say, the alarms a Fargate service's step scaling makes for itself)."""
    service: VideoJobs = synth.stack.service  # type: ignore[attr-defined]
    return [synth.resource(alarm)["Properties"] for alarm in service.monitoring.alarms]


def _dimension(name: str, value: Any) -> list[dict[str, Any]]:
    return [{"Name": name, "Value": value}]


def _alarms_on(synth: Synth, metric: str, dimensions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in _alarms(synth) if a.get("MetricName") == metric and a.get("Dimensions") == dimensions]


def _math_metrics(alarm: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(metric name, dimensions) of each metric a math alarm reads."""
    return [
        (m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Metric"]["Dimensions"])
        for m in alarm.get("Metrics", [])
        if "MetricStat" in m
    ]


def _in_construct(service: VideoJobs, synth: Synth, cfn_type: type) -> list[str]:
    return [synth.stack.get_logical_id(node) for node in service.node.find_all() if isinstance(node, cfn_type)]


def test_every_function_of_the_construct_alarms_on_errors_and_throttles(synth: Synth, service: VideoJobs) -> None:
    functions = _in_construct(service, synth, lambda_.CfnFunction)
    assert len(functions) >= len(wiring.FUNCTIONS)
    for lid in functions:
        for metric in ("Errors", "Throttles"):
            (alarm,) = _alarms_on(synth, metric, _dimension("FunctionName", {"Ref": lid}))
            assert alarm["Statistic"] == "Sum"
            assert alarm["Threshold"] == 1
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_recovers(synth: Synth, service: VideoJobs) -> None:
    topic = {"Ref": synth.logical_id(service.monitoring.topic)}
    alarms = _alarms(synth)
    assert alarms
    for alarm in alarms:
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmDescription"]


def test_every_queue_either_has_a_dlq_or_is_where_failures_end_up(synth: Synth) -> None:
    # Monitoring tells the two kinds apart by the redrive policy alone: this proves that is sound.
    queues = synth.of_type("AWS::SQS::Queue")
    redrive_targets = {
        json.dumps(res["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for res in queues.values()
        if "RedrivePolicy" in res["Properties"]
    }
    on_failure = {
        json.dumps(res["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
        for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if "DestinationConfig" in res["Properties"]
    }
    for lid, res in queues.items():
        if "RedrivePolicy" not in res["Properties"]:
            assert json.dumps({"Fn::GetAtt": [lid, "Arn"]}) in redrive_targets | on_failure, lid


def test_work_queues_alarm_when_messages_wait_too_long_but_not_on_work_in_flight(
    synth: Synth, service: VideoJobs
) -> None:
    # ApproximateAgeOfOldestMessage counts in-flight messages: every long job and every deferred webhook (hidden
    # until its next attempt) would trip it. Waiting messages are the visible ones.
    work_queues = [lid for lid in _in_construct(service, synth, sqs.CfnQueue) if _has_redrive(synth, lid)]
    assert len(work_queues) >= len(wiring.QUEUES)
    assert not [a for a in _alarms(synth) if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    for lid in work_queues:
        dimensions = _dimension("QueueName", {"Fn::GetAtt": [lid, "QueueName"]})
        (alarm,) = _alarms_on(synth, "ApproximateNumberOfMessagesVisible", dimensions)
        # Some message waited in every period of the whole limit: the queue never emptied for that long.
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Minimum",
            0,
            "GreaterThanThreshold",
        )
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"]
        assert alarm["EvaluationPeriods"] * alarm["Period"] == monitoring.QUEUE_AGE_LIMIT.to_seconds() == 1800


def _has_redrive(synth: Synth, lid: str) -> bool:
    return "RedrivePolicy" in synth.raw["Resources"][lid]["Properties"]


def test_dead_letter_and_failure_queues_alarm_on_any_message(synth: Synth, service: VideoJobs) -> None:
    failure_queues = [lid for lid in _in_construct(service, synth, sqs.CfnQueue) if not _has_redrive(synth, lid)]
    assert len(failure_queues) >= len(wiring.QUEUES) + 1  # the DLQs and the stream triggers' failure queue
    for lid in failure_queues:
        dimensions = _dimension("QueueName", {"Fn::GetAtt": [lid, "QueueName"]})
        (alarm,) = [a for a in _alarms(synth) if ("ApproximateNumberOfMessagesVisible", dimensions) in _math_metrics(a)]
        # Depth alone would miss the jobs DLQ, whose consumer empties it within seconds: receives count too.
        assert ("NumberOfMessagesReceived", dimensions) in _math_metrics(alarm)
        (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
        assert expression.count("FILL(") == 2 and "+" in expression
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_stream_consumers_alarm_when_minutes_behind_their_stream(synth: Synth, service: VideoJobs) -> None:
    assert wiring.STREAM_TRIGGERS
    for trigger in wiring.STREAM_TRIGGERS:
        fn = {"Ref": synth.logical_id(service.functions[trigger.function])}
        (alarm,) = _alarms_on(synth, "IteratorAge", _dimension("FunctionName", fn))
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == 5 * 60 * 1000
    stream_consumers = {t.function for t in wiring.STREAM_TRIGGERS}
    others = [name for name in wiring.FUNCTIONS if name not in stream_consumers]
    for name in others:
        fn = {"Ref": synth.logical_id(service.functions[name])}
        assert not _alarms_on(synth, "IteratorAge", _dimension("FunctionName", fn)), name


def test_api_alarms_on_a_sustained_5xx_rate(synth: Synth, service: VideoJobs) -> None:
    api_name = synth.resource(service.api)["Properties"]["Name"]
    (alarm,) = _alarms_on(synth, "5XXError", _dimension("ApiName", api_name))
    assert alarm["Namespace"] == "AWS/ApiGateway"
    assert alarm["Statistic"] == "Average"  # 5XXError is 0 or 1 per request: its average is the rate
    assert alarm["Threshold"] == 0.05
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_alarm_topic_takes_only_tls_and_this_accounts_alarms(synth: Synth, service: VideoJobs) -> None:
    topic = {"Ref": synth.logical_id(service.monitoring.topic)}
    (policy,) = synth.of_type("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [topic]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


# -- dashboard ----------------------------------------------------------------------------------------------


def _dashboard_widgets(synth: Synth) -> dict[str, dict[str, Any]]:
    """Widget title -> properties, with every reference in the body written as ``<LogicalId>``."""
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    _, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    body = "".join(part if isinstance(part, str) else f"<{json.dumps(part)[1:-1]}>".replace('"', "") for part in parts)
    return {widget["properties"]["title"]: widget["properties"] for widget in json.loads(body)["widgets"]}


def _metric_names(widget: dict[str, Any]) -> set[str]:
    names = set()
    for metric in widget.get("metrics", []):
        names.update(item for item in metric if isinstance(item, str))
        names.update(item["expression"] for item in metric if isinstance(item, dict) and "expression" in item)
    return names


def test_dashboard_shows_jobs_their_duration_and_webhook_success(synth: Synth) -> None:
    widgets = _dashboard_widgets(synth)
    jobs = _metric_names(widgets["Jobs"])
    assert {"VideoJobs", "JobsSubmitted", "JobsCompleted", "JobsFailed"} <= jobs
    assert "JobDuration" in _metric_names(widgets["Job duration (seconds, completed jobs)"])
    webhooks = _metric_names(widgets["Webhook delivery success rate (%)"])
    assert {"WebhookDeliveriesSucceeded", "WebhookDeliveriesFailed"} <= webhooks
    assert "100 * ok / (ok + failed)" in webhooks


def test_dashboard_shows_every_queue_function_and_alarm(synth: Synth, service: VideoJobs) -> None:
    widgets = _dashboard_widgets(synth)
    depth = json.dumps(widgets["Queue depth"])
    for lid in _in_construct(service, synth, sqs.CfnQueue):
        if _has_redrive(synth, lid):
            assert lid in depth and lid in json.dumps(
                widgets["Age of the oldest message, running jobs included (seconds)"]
            )
        else:
            assert lid in json.dumps(widgets["Jobs"]), lid  # dead-lettered work, beside the job counts
    errors = json.dumps(widgets["Function errors and throttles"])
    for lid in _in_construct(service, synth, lambda_.CfnFunction):
        assert lid in errors
    assert {"requests", "4xx", "5xx"} <= {m[-1]["label"] for m in widgets["API requests and errors"]["metrics"]}
    assert len(widgets["Alarms"]["alarms"]) == len(service.monitoring.alarms)


def test_dashboard_reads_the_namespace_and_dimension_the_handlers_write() -> None:
    assert metrics.namespace == metric_names.METRICS_NAMESPACE
    assert metrics.service == metric_names.SERVICE_NAME


def test_an_unreadable_queue_message_raises_an_alarm(synth: Synth) -> None:
    # A labelled metric is rendered as one MetricStat of the alarm's Metrics.
    watched = [
        (alarm, query["MetricStat"]["Metric"])
        for alarm in _alarms(synth)
        for query in alarm.get("Metrics", [])
        if query.get("MetricStat", {}).get("Metric", {}).get("MetricName") == metric_names.UNREADABLE_MESSAGES
    ]
    ((alarm, metric),) = watched
    assert metric["Namespace"] == metric_names.METRICS_NAMESPACE
    assert metric["Dimensions"] == _dimension("service", metric_names.SERVICE_NAME)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
