"""Submit overhead: POST /jobs (handler in-process, and through the local HTTP gateway) against the bare
boto3 calls it must make (PutItem + SendMessage), all on the same moto server, interleaved.

    .venv/bin/python -m bench.submit_overhead [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

import httpx

from bench.common import interleaved, summary_ms, write_result
from infra.local.lambda_context import LambdaContext
from infra.local.stack import LocalStack
from videojobs.object_store import upload_key

UPLOAD_ID = "upl_" + "b" * 32


def quiet_handlers() -> None:
    """Per-request logs and metric lines would cost more than the work being measured."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"


def proxy_event(body: str, tenant: str) -> dict[str, Any]:
    """The API Gateway event POST /jobs arrives as (what the local gateway builds for each request)."""
    headers = {"Content-Type": "application/json", "Host": "bench.local"}
    return {
        "resource": "/jobs",
        "path": "/jobs",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "v1",
            "path": "/jobs",
            "httpMethod": "POST",
            "resourcePath": "/jobs",
            "authorizer": {"principalId": tenant, "tenant_id": tenant},
        },
    }


def main(rounds: int = 300) -> dict[str, Any]:
    quiet_handlers()
    # No job consumer: the benchmark measures the API, not ffmpeg competing for the cores.
    with LocalStack(port=0, queue_concurrency={"jobs": 0}) as stack:
        from functions.submit import handler as submit  # after the stack set the environment

        env = stack.env
        dynamodb, sqs, s3 = stack.client("dynamodb"), stack.client("sqs"), stack.client("s3")
        s3.put_object(Bucket=env["UPLOADS_BUCKET"], Key=upload_key("dev", UPLOAD_ID), Body=b"x" * 1024)
        body = json.dumps({"input": {"upload_id": UPLOAD_ID}, "outputs": [{"type": "mp4", "height": 360}]})
        http = httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
        )

        def bare_calls() -> None:
            job_id = uuid.uuid4().hex
            dynamodb.put_item(
                TableName=env["JOBS_TABLE"],
                Item={
                    "id": {"S": job_id},
                    "tenant_id": {"S": "dev"},
                    "created_key": {"S": job_id},
                    "status": {"S": "queued"},
                    "version": {"N": "1"},
                },
            )
            sqs.send_message(QueueUrl=env["JOBS_QUEUE_URL"], MessageBody=json.dumps({"job_id": job_id}))

        context = LambdaContext(
            function_name="submit",
            memory_limit_in_mb=512,
            timeout_seconds=29,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:submit",
        )

        def handler_in_process() -> None:
            response = submit.lambda_handler(proxy_event(body, "dev"), context)
            assert response["statusCode"] == 202, response

        def through_http() -> None:
            response = http.post("/jobs", content=body)
            assert response.status_code == 202, response.text

        samples = interleaved(
            {"bare_boto3": bare_calls, "handler": handler_in_process, "http": through_http}, rounds=rounds
        )
    stats = {name: summary_ms(values) for name, values in samples.items()}
    base = stats["bare_boto3"]["p50_ms"]
    result = {
        "what": "POST /jobs vs bare PutItem+SendMessage on the same moto server (ms)",
        **stats,
        "ratio_handler_p50": round(stats["handler"]["p50_ms"] / base, 2),
        "ratio_http_p50": round(stats["http"]["p50_ms"] / base, 2),
    }
    write_result("submit_overhead", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    print(json.dumps(main(parser.parse_args().rounds), indent=2))
