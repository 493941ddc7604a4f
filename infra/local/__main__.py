"""``python -m infra.local``: run the whole service locally on moto until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from infra.local.stack import DEFAULT_QUEUE_CONCURRENCY, DEFAULT_S3_SESSION_LIFETIME_SECONDS, LocalStack
from infra.local.websocket import ConnectionLimits
from videojobs import settings, wiring


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local",
        description="Serve the videojobs API on moto: every table, bucket and queue of videojobs.wiring, the "
        "authorizer, and the queue and stream triggers, all in this process.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="API port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--moto-port", type=int, default=0, help="moto server port; 0 picks a free one (default)")
    parser.add_argument(
        "--state-file",
        default=".local/stack.json",
        help="where to write the URL, API key and environment for other tools; removed on exit (default: %(default)s)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=-1,
        metavar="SECONDS",
        help="one visibility timeout for every queue (default: -1, the deployed ones: 6x each consumer's "
        "timeout, as in AWS)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_QUEUE_CONCURRENCY,
        help="concurrent batches per queue, i.e. jobs processed at once (default: %(default)s)",
    )
    parser.add_argument(
        "--disabled-event-source",
        action="append",
        default=[],
        choices=[name for name, queue in wiring.QUEUES.items() if queue.consumer in wiring.FUNCTIONS],
        metavar="QUEUE",
        help="a queue whose event source mapping is disabled (Lambda's Enabled=false): its messages wait for "
        "whoever receives them, e.g. a test that works them itself (repeatable)",
    )
    parser.add_argument(
        "--webhook-retry-delays",
        type=lambda text: [float(item) for item in text.split(",") if item.strip()],
        metavar="S1,S2,...",
        help="seconds before each retry of a failed webhook delivery, e.g. 1,2,5 (default: the deployed schedule, "
        "5 s, 5 min, 30 min, ... about three days)",
    )
    parser.add_argument(
        "--no-loopback-webhooks",
        action="store_true",
        help="refuse webhook URLs on http://127.0.0.1 as AWS does (by default the local stack allows them, so "
        "that a receiver on this machine can be used)",
    )
    parser.add_argument(
        "--authorizer-cache-ttl",
        type=float,
        default=wiring.AUTHORIZER_CACHE_SECONDS,
        metavar="SECONDS",
        help="how long the gateway caches the authorizer's answer per key, as the CDK prop "
        "authorizer_cache_ttl_seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--s3-session-lifetime",
        type=float,
        default=DEFAULT_S3_SESSION_LIFETIME_SECONDS,
        metavar="SECONDS",
        help="presigned S3 URLs are refused this long after they were signed, whatever their expiry, as AWS "
        "refuses them once the signing role's session has expired (default: %(default)s)",
    )
    parser.add_argument(
        "--custom-domain",
        action="store_true",
        help="serve the API as behind a custom domain's base-path mapping: only under /v1, with /v1 kept in "
        "the event's path (as on https://api.example.com/v1)",
    )
    parser.add_argument(
        "--account-concurrency",
        type=int,
        metavar="N",
        help="the account's unreserved Lambda concurrency: invocations beyond it are throttled (default: none)",
    )
    parser.add_argument(
        "--cold-start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="init time of each new execution environment, inside API Gateway's 29 s (default: %(default)s)",
    )
    parser.add_argument(
        "--sandbox",
        action="append",
        default=[],
        choices=sorted(wiring.FUNCTIONS),
        metavar="FUNCTION",
        help="run this function's execution environments as child processes (repeatable), which can be killed "
        "mid-invocation as a Lambda sandbox dies; by default every function runs in this process",
    )
    parser.add_argument(
        "--ws-idle-timeout",
        type=float,
        default=ConnectionLimits.idle_seconds,
        metavar="SECONDS",
        help="close a WebSocket after this long without a message from its client (API Gateway: %(default)s)",
    )
    parser.add_argument(
        "--ws-max-connection",
        type=float,
        default=ConnectionLimits.max_seconds,
        metavar="SECONDS",
        help="close any WebSocket after this long (API Gateway: %(default)s)",
    )
    parser.add_argument(
        "--stale-reads",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="eventually consistent DynamoDB reads see the data as it was this long ago, as a lagging replica "
        "would answer (default: %(default)s, always the latest)",
    )
    parser.add_argument(
        "--no-fair-queues",
        action="store_true",
        help="deliver queue messages in arrival order instead of as SQS fair queues do (to compare; "
        "infra/local/fair_sqs.py)",
    )
    parser.add_argument(
        "--sse",
        choices=["stream", "long-poll"],
        default="stream",
        help="GET /jobs/{id}/events as one streamed response (API Gateway's response streaming, the CDK "
        "default) or as long polls (the CDK prop sse_transport='long_poll') (default: %(default)s)",
    )
    parser.add_argument(
        "--stream-max-seconds",
        type=float,
        default=wiring.RESPONSE_STREAMING.max_seconds,
        metavar="SECONDS",
        help="cut a streamed response after this long (API Gateway: %(default)s)",
    )
    parser.add_argument(
        "--stream-idle-seconds",
        type=float,
        default=wiring.RESPONSE_STREAMING.idle_seconds,
        metavar="SECONDS",
        help="cut a streamed response that sent nothing for this long (API Gateway, edge-optimized: %(default)s)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    stack = LocalStack(
        host=args.host,
        port=args.port,
        moto_port=args.moto_port,
        state_file=args.state_file,
        visibility_timeout_seconds=None if args.visibility_timeout < 0 else args.visibility_timeout,
        queue_concurrency={name: 0 if name in args.disabled_event_source else args.workers for name in wiring.QUEUES},
        log_level=args.log_level,
        allow_loopback_webhooks=not args.no_loopback_webhooks,
        webhook_retry_delays=args.webhook_retry_delays,
        authorizer_cache_seconds=args.authorizer_cache_ttl,
        s3_session_lifetime_seconds=args.s3_session_lifetime,
        custom_domain=args.custom_domain,
        account_concurrency=args.account_concurrency,
        cold_start_seconds=args.cold_start,
        sandboxed_functions=args.sandbox,
        websocket_limits=ConnectionLimits(idle_seconds=args.ws_idle_timeout, max_seconds=args.ws_max_connection),
        stale_read_seconds=args.stale_reads,
        fair_queues=not args.no_fair_queues,
        response_streaming=wiring.ResponseStreaming(args.stream_max_seconds, args.stream_idle_seconds)
        if args.sse == "stream"
        else None,
    )
    with stack:
        # Behind a custom domain, the API lives under its base path only.
        print(f"videojobs local stack ready: {stack.url}{f'/{wiring.API_BASE_PATH}' if args.custom_domain else ''}")
        print(f"dev API key: {stack.api_key}")
        print(f"web page: {stack.url}/   API docs: {stack.url}/docs")
        print(f"moto endpoint: {stack.moto_endpoint}, S3 (strict): {stack.s3_endpoint} (state in {args.state_file})")
        print(f"WebSocket API: {stack.env[settings.WEBSOCKET_URL]}")
        print(f'try: curl -s -H "Authorization: Bearer {stack.api_key}" {stack.url}/jobs')
        sys.stdout.flush()
        while not stopping.wait(0.5):
            pass
        logging.getLogger(__name__).info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
