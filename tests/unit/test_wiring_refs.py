"""Names in ``uses`` resolve to one typed reference each, which knows its environment variable."""

from __future__ import annotations

import pytest

from videojobs import settings, wiring


def test_each_kind_of_name_resolves_to_its_reference_and_variable() -> None:
    # "jobs" names both a table and a queue: the suffix tells them apart.
    assert wiring.ref("jobs") == wiring.TableRef("jobs")
    assert wiring.ref("jobs_queue") == wiring.QueueRef("jobs")
    assert wiring.ref("deliveries_dlq") == wiring.DeadLetterQueueRef("deliveries")
    assert wiring.ref("uploads") == wiring.BucketRef("uploads")
    assert wiring.ref(wiring.WEBSOCKET) == wiring.WebSocketRef()
    assert [wiring.ref(name).env_var for name in ("jobs", "jobs_queue", "deliveries_dlq", "uploads", "websocket")] == [
        settings.JOBS_TABLE,
        settings.JOBS_QUEUE_URL,
        settings.DELIVERIES_DLQ_URL,
        settings.UPLOADS_BUCKET,
        settings.WEBSOCKET_URL,
    ]


@pytest.mark.parametrize("name", ["nope", "nope_queue", "nope_dlq", "jobs_table"])
def test_an_unknown_name_is_refused(name: str) -> None:
    with pytest.raises(KeyError, match=name):
        wiring.ref(name)


def test_a_dead_letter_queue_without_a_variable_has_none() -> None:
    assert wiring.QUEUES["jobs"].dead_letter_env_var is None
    with pytest.raises(KeyError, match="dead_letter_env_var"):
        _ = wiring.ref("jobs_dlq").env_var


def test_every_declared_use_resolves() -> None:
    for consumer in [*wiring.FUNCTIONS.values(), *wiring.SERVICES.values()]:
        assert len(wiring.refs(consumer.uses)) == len(consumer.uses)
