"""The fair-queue ordering the local SQS applies (infra/local/fair_sqs.py), against AWS's documented rules."""

from __future__ import annotations

from infra.local.fair_sqs import NOISY_MIN_IN_FLIGHT, TenantLoad, fair_order, noisy_tenants


def order(messages: list[tuple[str, str | None]], load: dict[str, TenantLoad]) -> list[str]:
    return [name for name, _ in fair_order(messages, lambda message: message[1], load)]


def test_arrival_order_when_no_tenant_is_noisy() -> None:
    messages = [("a1", "A"), ("b1", "B"), ("a2", "A")]
    assert order(messages, {}) == ["a1", "b1", "a2"]


def test_a_tenant_with_most_of_the_processing_time_goes_after_quiet_ones() -> None:
    load = {"A": TenantLoad(in_flight=2, processing_seconds=40.0), "B": TenantLoad(processing_seconds=1.0)}
    assert noisy_tenants(load) == {"A"}
    assert order([("a1", "A"), ("a2", "A"), ("b1", "B"), ("x", None)], load) == ["b1", "x", "a1", "a2"]


def test_concurrency_share_needs_thirty_in_flight() -> None:
    few = {"A": TenantLoad(in_flight=NOISY_MIN_IN_FLIGHT - 1), "B": TenantLoad(in_flight=1)}
    many = {"A": TenantLoad(in_flight=NOISY_MIN_IN_FLIGHT), "B": TenantLoad(in_flight=1)}
    assert noisy_tenants(few) == set()
    assert noisy_tenants(many) == {"A"}


def test_among_noisy_tenants_the_one_with_fewest_in_flight_goes_first() -> None:
    load = {
        "A": TenantLoad(in_flight=3, processing_seconds=50.0),
        "B": TenantLoad(in_flight=1, processing_seconds=50.0),
    }
    assert noisy_tenants(load) == {"A", "B"}
    assert order([("a1", "A"), ("b1", "B")], load) == ["b1", "a1"]


def test_equal_in_flight_goes_by_less_recent_processing_time() -> None:
    load = {
        "A": TenantLoad(in_flight=1, processing_seconds=90.0),
        "B": TenantLoad(in_flight=1, processing_seconds=10.0),
    }
    assert order([("a1", "A"), ("b1", "B")], load) == ["b1", "a1"]
