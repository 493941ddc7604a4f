"""The tables, buckets and queues of ``videojobs.wiring``, created in moto with the settings the CDK stack uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from videojobs import wiring

PREFIX = "videojobs"

ClientFactory = Callable[[str], Any]


def table_name(name: str) -> str:
    return f"{PREFIX}-{name}"


def bucket_name(name: str) -> str:
    return f"{PREFIX}-{name}".replace("_", "-")  # bucket names allow no underscores


EVENT_BUS_NAME = f"{PREFIX}-events"


def queue_name(name: str) -> str:
    return f"{PREFIX}-{name}"


def dead_letter_queue_name(name: str) -> str:
    return f"{PREFIX}-{name}-dlq"


@dataclass(frozen=True)
class QueueRef:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


@dataclass(frozen=True)
class Resources:
    """Physical names of what was created, by logical name."""

    tables: dict[str, str]
    stream_arns: dict[str, str]
    buckets: dict[str, str]
    queues: dict[str, QueueRef]
    event_bus: str
    """The EventBridge bus's name (moto's EventBridge: rules deliver to SQS targets)."""

    def physical(self, ref: wiring.ResourceRef) -> str | None:
        """What a function's environment variable holds for a resource it uses; None for the WebSocket API,
        served by the gateway (the stack sets its URL once it listens)."""
        match ref:
            case wiring.TableRef(name):
                return self.tables[name]
            case wiring.BucketRef(name):
                return self.buckets[name]
            case wiring.QueueRef(name):
                return self.queues[name].url
            case wiring.DeadLetterQueueRef(name):
                return self.queues[name].dlq_url
            case wiring.WebSocketRef():
                return None
            case wiring.EventBusRef():
                return self.event_bus

    def environment(self) -> dict[str, str]:
        """The union of every function's resource variables (they agree by construction, as all functions share
        one process locally)."""
        env: dict[str, str] = {}
        for name, function in wiring.FUNCTIONS.items():
            for ref in wiring.refs(function.uses):
                value = self.physical(ref)
                if value is None:
                    continue
                variable = ref.env_var
                if env.setdefault(variable, value) != value:
                    raise ValueError(f"{name}: {variable} would be both {env[variable]!r} and {value!r}")
        return env


def create_resources(client: ClientFactory, region: str, visibility_timeout_seconds: int | None = None) -> Resources:
    """Create every declared resource. ``visibility_timeout_seconds`` overrides the visibility timeout of every
    queue, dead-letter queues included (otherwise six times the consumer's timeout, as in the CDK stack)."""
    dynamodb, s3, sqs = client("dynamodb"), client("s3"), client("sqs")
    tables, streams = {}, {}
    for name, table in wiring.TABLES.items():
        tables[name] = table_name(name)
        description = dynamodb.create_table(**_table_spec(tables[name], table))["TableDescription"]
        if table.stream:
            streams[name] = description["LatestStreamArn"]
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=tables[name],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
    buckets = {}
    for name, bucket in wiring.BUCKETS.items():
        buckets[name] = bucket_name(name)
        _create_bucket(s3, buckets[name], region)
        rule: dict[str, Any] = {
            "ID": "expire",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": bucket.abort_incomplete_uploads_after_days},
        }
        if bucket.expire_after_days is not None:
            rule["Expiration"] = {"Days": bucket.expire_after_days}
        s3.put_bucket_lifecycle_configuration(Bucket=buckets[name], LifecycleConfiguration={"Rules": [rule]})
        if bucket.browser_methods:
            cors = wiring.BROWSER_CORS
            s3.put_bucket_cors(
                Bucket=buckets[name],
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "AllowedMethods": list(bucket.browser_methods),
                            "AllowedOrigins": list(cors.origins),
                            "AllowedHeaders": list(cors.headers),
                            "ExposeHeaders": list(cors.exposed_headers),
                            "MaxAgeSeconds": cors.max_age_seconds,
                        }
                    ]
                },
            )
    queues = {
        name: _create_queue(sqs, name, queue, visibility_timeout_seconds) for name, queue in wiring.QUEUES.items()
    }
    client("events").create_event_bus(Name=EVENT_BUS_NAME)
    return Resources(tables=tables, stream_arns=streams, buckets=buckets, queues=queues, event_bus=EVENT_BUS_NAME)


def _table_spec(name: str, table: wiring.Table) -> dict[str, Any]:
    keys = {table.partition_key} | {key for index in table.indexes for key in (index.partition_key, index.sort_key)}
    keys |= {table.sort_key} if table.sort_key else set()
    spec: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"} for key in sorted(keys)],
        "KeySchema": [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
        + ([{"AttributeName": table.sort_key, "KeyType": "RANGE"}] if table.sort_key else []),
    }
    if table.indexes:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": index.projection_type}
                | ({"NonKeyAttributes": list(index.projection)} if index.projection else {}),
            }
            for index in table.indexes
        ]
    if table.stream:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return spec


def _create_bucket(s3: Any, name: str, region: str) -> None:
    if region == "us-east-1":  # the one region that rejects an explicit LocationConstraint
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


def _create_queue(sqs: Any, name: str, queue: wiring.Queue, visibility_timeout_seconds: int | None) -> QueueRef:
    dlq_attributes = {"MessageRetentionPeriod": str(wiring.DEAD_LETTER_RETENTION_SECONDS)}
    dlq_timeout = wiring.dead_letter_visibility_timeout_seconds(queue)
    if dlq_timeout is not None:
        dlq_attributes["VisibilityTimeout"] = str(
            dlq_timeout if visibility_timeout_seconds is None else visibility_timeout_seconds
        )
    dlq_url = sqs.create_queue(QueueName=dead_letter_queue_name(name), Attributes=dlq_attributes)["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    visibility = (
        wiring.visibility_timeout_seconds(queue) if visibility_timeout_seconds is None else visibility_timeout_seconds
    )
    url = sqs.create_queue(
        QueueName=queue_name(name),
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}),
        },
    )["QueueUrl"]
    return QueueRef(url=url, arn=_queue_arn(sqs, url), dlq_url=dlq_url, dlq_arn=dlq_arn)


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
