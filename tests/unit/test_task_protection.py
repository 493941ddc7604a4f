"""The long-jobs consumer's ECS task scale-in protection: set while a job runs, and a refusal surfaced."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.process import consumer
from videojobs.metric_names import TASK_PROTECTION_FAILED


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[dict[str, Any]], list[tuple[int, dict]]]]:
    """An ECS agent endpoint: records each state it is asked for and answers from ``answers`` (status, body)."""
    asked: list[dict[str, Any]] = []
    answers: list[tuple[int, dict]] = []

    class Agent(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            assert self.path == "/task-protection/v1/state"
            asked.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status, body = answers.pop(0) if answers else (200, {"protection": {"ProtectionEnabled": True}})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ECS_AGENT_URI", f"http://127.0.0.1:{server.server_address[1]}")
    yield asked, answers
    server.shutdown()
    server.server_close()


def _failures_emitted(output: str) -> int:
    count = 0
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            value = json.loads(line).get(TASK_PROTECTION_FAILED, 0)
            count += int(sum(value) if isinstance(value, list) else value)
    return count


def test_protection_is_taken_for_the_job_and_given_up_after(agent, capfd) -> None:
    asked, _ = agent
    with consumer.scale_in_protection(90):
        assert asked == [{"ProtectionEnabled": True, "ExpiresInMinutes": 90}]
    assert asked[-1] == {"ProtectionEnabled": False}
    assert _failures_emitted(capfd.readouterr().out) == 0


@pytest.mark.parametrize(
    "answer",
    [
        # What the agent answers when ECS refuses, e.g. without ecs:UpdateTaskProtection on the task role.
        (200, {"failure": {"Arn": "arn:aws:ecs:task/x", "Reason": "AccessDeniedException"}}),
        (400, {"error": {"Code": "AccessDeniedException", "Message": "not authorized"}}),
    ],
)
def test_a_refused_protection_is_logged_and_counted(agent, capfd, monkeypatch, answer) -> None:
    _, answers = agent
    logged: list[str] = []
    for level in ("error", "exception"):
        monkeypatch.setattr(consumer.logger, level, lambda message, *_, **__: logged.append(message))
    answers.append(answer)
    with consumer.scale_in_protection(10):
        pass
    out = capfd.readouterr().out
    assert _failures_emitted(out) == 1 and len(logged) == 1 and "task protection" in logged[0]
