"""A local webhook receiver for developers: verifies each delivery's signature and prints its event."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from videojobs.sdk.client import verify_webhook
from videojobs.sdk.errors import WebhookVerificationError

MAX_BODY_BYTES = 1024 * 1024


def listen(
    host: str, port: int, secret: str, *, as_json: bool = False, count: int | None = None, out: TextIO = sys.stdout
) -> int:
    """Serve until interrupted (or ``count`` verified events): 204 for a verified delivery, 401 otherwise.

    Each verified event is printed on ``out``, one line each (JSON lines with ``as_json``); a redelivery of an
    event already seen (the same ``webhook-id``) is marked as one."""
    seen: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)
            try:
                event = verify_webhook(body, dict(self.headers.items()), secret)
            except (WebhookVerificationError, ValueError) as error:
                print(f"rejected a delivery to {self.path}: {error}", file=sys.stderr, flush=True)
                self._answer(401)
                return
            webhook_id = self.headers.get("webhook-id", "")
            with lock:
                duplicate = webhook_id in seen
                seen.add(webhook_id)
                if as_json:
                    line = json.dumps(
                        {"webhook_id": webhook_id, "duplicate": duplicate, "event": event.model_dump(mode="json")}
                    )
                else:
                    job = event.data
                    line = f"{event.type} {job.id} v{job.version} {job.status} {job.progress}%" + (
                        " (duplicate)" if duplicate else ""
                    )
                print(line, file=out, flush=True)
                if count is not None and len(seen) >= count:
                    enough.set()
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the events printed above are the log

    server = ThreadingHTTPServer((host, port), Receiver)
    address = f"http://{host}:{server.server_address[1]}/"
    print(f"listening for webhooks on {address} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    thread = threading.Thread(target=server.serve_forever, name="webhooks-listen", daemon=True)
    thread.start()
    try:
        while not enough.wait(0.2):
            pass
    except KeyboardInterrupt:
        return 130
    finally:
        server.shutdown()
        server.server_close()
    return 0
