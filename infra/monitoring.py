"""Alarms and a dashboard for everything inside a ``VideoJobs`` construct, found by walking its tree.

Whatever adds a function or a queue to the construct (the wiring, ``infra/fargate.py``, ``infra/websocket.py``)
gets its alarms and its place on the dashboard without an edit here, as long as it is added before
``Monitoring`` is built (the last step of ``VideoJobs.__init__``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from videojobs import wiring

# The handlers' EMF metrics, by the names they are emitted under: Powertools adds the dimension service=<name>.
from videojobs.metric_names import (
    JOB_DURATION,
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOBS_SUBMITTED,
    METRICS_NAMESPACE,
    SERVICE_NAME,
    TASK_PROTECTION_FAILED,
    UNREADABLE_MESSAGES,
    WEBHOOK_DELIVERIES_FAILED,
    WEBHOOK_DELIVERIES_SUCCEEDED,
)

PERIOD = Duration.minutes(5)
# A job waits for a worker at most this long before someone should look (the queue is backing up, or a
# message was redelivered after a failed attempt).
QUEUE_AGE_LIMIT = Duration.minutes(30)
# Job events should reach clients within seconds; minutes behind means the stream consumer keeps failing.
ITERATOR_AGE_LIMIT = Duration.minutes(5)
API_5XX_RATE_LIMIT = 0.05


def _business_metric(name: str, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=PERIOD,
        label=label or name,
    )


def _label(construct: Construct) -> str:
    return construct.node.path


def _reads_a_stream(fn: lambda_.Function) -> bool:
    # Stream event source mappings (DynamoDB, Kinesis) are the only ones with a starting position.
    return any(
        isinstance(child, lambda_.CfnEventSourceMapping) and child.starting_position is not None
        for child in fn.node.find_all()
    )


class Monitoring(Construct):
    """Alarms (to an SNS topic) and a CloudWatch dashboard for the functions, queues and API in ``watched``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        watched: Construct,
        api: apigw.RestApi,
        topic: sns.ITopic | None = None,
        email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._watched_path = watched.node.path
        everything = watched.node.find_all()
        self.functions = [c for c in everything if isinstance(c, lambda_.Function)]
        queues = [c for c in everything if isinstance(c, sqs.Queue)]
        # Every work queue has a dead-letter queue; a queue without one is itself where failures end up (a
        # dead-letter queue or an on-failure destination). tests/infra checks that this holds.
        self.work_queues = [queue for queue in queues if queue.dead_letter_queue is not None]
        self.failure_queues = [queue for queue in queues if queue.dead_letter_queue is None]
        self.api = api

        self.topic = topic or self._own_topic()
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.alarms: list[cw.Alarm] = []
        self._alarm_on_functions()
        self._alarm_on_queues()
        self._alarm_on_api()
        if wiring.SERVICES:
            self._alarm(
                "TaskProtectionFailed",
                "A long-jobs task could not take ECS scale-in protection: a scale-in may stop it mid-job "
                "(the job is handed back, but restarts from the beginning)",
                metric=_business_metric(TASK_PROTECTION_FAILED),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        self.dashboard = self._dashboard()

    def _name(self, construct: Construct) -> str:
        """Unique within the watched construct, readable in alarm IDs and legends: ``ProcessFunction``."""
        return construct.node.path.removeprefix(f"{self._watched_path}/").replace("/", "")

    def _own_topic(self) -> sns.Topic:
        # Not KMS-encrypted: CloudWatch cannot publish to a topic under the AWS-managed SNS key, and an alarm
        # notification carries no customer data (the nag acknowledgement says the same).
        topic = sns.Topic(self, "AlarmTopic", display_name="videojobs alarms", enforce_ssl=True)
        # The TopicPolicy that enforce_ssl creates replaces SNS's default policy: let this account's alarms in.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        return topic

    def _alarm(self, construct_id: str, description: str, **props: Any) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            construct_id,
            alarm_description=description,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            **props,
        )
        action = cw_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    # -- alarms -------------------------------------------------------------------------------------------

    def _alarm_on_functions(self) -> None:
        for fn in self.functions:
            name = self._name(fn)
            self._alarm(
                f"{name}Errors",
                f"{_label(fn)} raised errors (unhandled exceptions or timeouts): see its log group",
                metric=fn.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
            self._alarm(
                f"{name}Throttles",
                f"{_label(fn)} was throttled: the account's or the function's concurrency is exhausted",
                metric=fn.metric_throttles(period=PERIOD, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
            if _reads_a_stream(fn):
                self._alarm(
                    f"{name}IteratorAge",
                    f"{_label(fn)} is more than {ITERATOR_AGE_LIMIT.to_minutes()} minutes behind its stream",
                    metric=fn.metric("IteratorAge", period=PERIOD, statistic="Maximum"),
                    threshold=ITERATOR_AGE_LIMIT.to_milliseconds(),
                    evaluation_periods=1,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                )

    def _alarm_on_queues(self) -> None:
        # Not ApproximateAgeOfOldestMessage: it counts in-flight messages, so every job running longer than the
        # limit and every webhook deferred to a later attempt would trip it. What waits for a consumer is visible.
        waiting_periods = int(QUEUE_AGE_LIMIT.to_seconds() / PERIOD.to_seconds())
        for queue in self.work_queues:
            self._alarm(
                f"{self._name(queue)}Waiting",
                f"Messages have waited in {_label(queue)} for {QUEUE_AGE_LIMIT.to_minutes()} minutes without "
                "the queue emptying once: the consumers fall behind or do not run",
                metric=queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Minimum"),
                threshold=0,
                evaluation_periods=waiting_periods,
                datapoints_to_alarm=waiting_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
        for queue in self.failure_queues:
            self._alarm(
                f"{self._name(queue)}Depth",
                f"Messages reached {_label(queue)}: work failed on every attempt",
                metric=self._arrivals(queue),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )

        self._alarm(
            "UnreadableMessages",
            "A queue message was not its queue's contract: it is logged with its message id and left for the "
            "dead-letter queue (videojobs.queues.read_message)",
            metric=_business_metric(UNREADABLE_MESSAGES),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def _arrivals(self, queue: sqs.Queue) -> cw.MathExpression:
        # Depth alone misses a dead-letter queue whose consumer drains it within seconds (the jobs DLQ's
        # consumer ends each job failed): count what was received from it too.
        # Metric ids are unique per graph, which may show several queues: derive them from the queue.
        name = self._name(queue)
        visible, received = f"visible{name}", f"received{name}"
        return cw.MathExpression(
            expression=f"FILL({visible}, 0) + FILL({received}, 0)",
            using_metrics={
                visible: queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                received: queue.metric_number_of_messages_received(period=PERIOD, statistic="Sum"),
            },
            label=f"{self._name(queue)}: waiting + received",
            period=PERIOD,
        )

    def _alarm_on_api(self) -> None:
        self._alarm(
            "Api5xxRate",
            f"Over {API_5XX_RATE_LIMIT:.0%} of the API's requests answered 5xx in 2 of the last 3 "
            f"{PERIOD.to_minutes()}-minute periods",
            metric=self.api.metric_server_error(period=PERIOD, statistic="Average"),
            threshold=API_5XX_RATE_LIMIT,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    # -- dashboard ----------------------------------------------------------------------------------------

    def _dashboard(self) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dead_lettered = [self._arrivals(queue) for queue in self.failure_queues]
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Jobs",
                left=[
                    _business_metric(JOBS_SUBMITTED),
                    _business_metric(JOBS_COMPLETED),
                    _business_metric(JOBS_FAILED),
                ],
                right=dead_lettered,
                right_y_axis=cw.YAxisProps(label="dead-lettered", min=0, show_units=False),
                width=12,
            ),
            cw.GraphWidget(
                title="Job duration (seconds, completed jobs)",
                left=[
                    _business_metric(JOB_DURATION, stat, f"{stat} {JOB_DURATION}") for stat in ("p50", "p90", "Maximum")
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Queue depth",
                left=[
                    metric
                    for queue in self.work_queues
                    for metric in (
                        queue.metric_approximate_number_of_messages_visible(
                            period=PERIOD, statistic="Maximum", label=f"{self._name(queue)} waiting"
                        ),
                        queue.metric_approximate_number_of_messages_not_visible(
                            period=PERIOD, statistic="Maximum", label=f"{self._name(queue)} in flight"
                        ),
                    )
                ],
                width=12,
            ),
            cw.GraphWidget(
                # In-flight messages count here: a long job is old, not late (the alarms watch waiting ones).
                title="Age of the oldest message, running jobs included (seconds)",
                left=[
                    queue.metric_approximate_age_of_oldest_message(
                        period=PERIOD, statistic="Maximum", label=self._name(queue)
                    )
                    for queue in self.work_queues
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Webhook delivery success rate (%)",
                left=[
                    cw.MathExpression(
                        expression="100 * ok / (ok + failed)",
                        using_metrics={
                            "ok": _business_metric(WEBHOOK_DELIVERIES_SUCCEEDED),
                            "failed": _business_metric(WEBHOOK_DELIVERIES_FAILED),
                        },
                        label="success rate",
                        period=PERIOD,
                    )
                ],
                left_y_axis=cw.YAxisProps(min=0, max=100, show_units=False),
                right=[_business_metric(WEBHOOK_DELIVERIES_SUCCEEDED), _business_metric(WEBHOOK_DELIVERIES_FAILED)],
                width=12,
            ),
            cw.GraphWidget(
                title="API requests and errors",
                left=[
                    self.api.metric_count(period=PERIOD, label="requests"),
                    self.api.metric_client_error(period=PERIOD, label="4xx"),
                    self.api.metric_server_error(period=PERIOD, label="5xx"),
                ],
                right=[self.api.metric_latency(period=PERIOD, statistic="p90", label="p90 latency")],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Function errors and throttles",
                left=[fn.metric_errors(period=PERIOD, label=f"{self._name(fn)} errors") for fn in self.functions],
                right=[
                    fn.metric_throttles(period=PERIOD, label=f"{self._name(fn)} throttles") for fn in self.functions
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Function duration p90 (ms)",
                left=[
                    fn.metric_duration(period=PERIOD, statistic="p90", label=self._name(fn)) for fn in self.functions
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Stream consumers: iterator age (ms)",
                left=[
                    fn.metric("IteratorAge", period=PERIOD, statistic="Maximum", label=self._name(fn))
                    for fn in self.functions
                    if _reads_a_stream(fn)
                ],
                left_annotations=[cw.HorizontalAnnotation(value=ITERATOR_AGE_LIMIT.to_milliseconds(), label="alarm")],
                width=6,
            ),
        )
        dashboard.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24))
        return dashboard
