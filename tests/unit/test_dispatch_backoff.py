"""A job deferred at its tenant's limit waits longer each time, up to a cap (videojobs/dispatch.py)."""

from __future__ import annotations

from typing import Any

from videojobs.dispatch import AT_LIMIT_MAX_RETRY_SECONDS, Dispatch
from videojobs.models import JobMessage


def dispatch() -> Dispatch:
    unused: Any = None
    return Dispatch(jobs=unused, active=unused, max_active_jobs=lambda _: 1, at_limit_retry_seconds=10)


def test_the_wait_doubles_with_each_deferral_within_its_jitter() -> None:
    turn = dispatch()
    for deferrals, base in ((0, 10), (1, 20), (2, 40), (3, 80)):
        waits = [turn.at_limit_delay(deferrals) for _ in range(50)]
        assert all(0.5 * base <= wait <= 1.5 * base for wait in waits), (deferrals, waits)


def test_the_wait_is_capped_however_often_the_job_was_deferred() -> None:
    assert all(dispatch().at_limit_delay(1000) <= 1.5 * AT_LIMIT_MAX_RETRY_SECONDS for _ in range(50))


def test_a_first_message_keeps_its_plain_body() -> None:
    assert JobMessage(job_id="job_1").model_dump_json(exclude_defaults=True) == '{"job_id":"job_1"}'
    assert JobMessage.model_validate_json('{"job_id":"job_1","deferrals":2}').deferrals == 2
