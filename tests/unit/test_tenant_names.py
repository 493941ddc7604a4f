"""Tenant names cannot carry a composite key's separator, and composite keys are unambiguous anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

from videojobs.cli import EXIT_USAGE, main
from videojobs.ids import InvalidTenantName, check_tenant_name
from videojobs.job_store import IdempotencyKey

VALID = ["acme", "a", "0", "acme-eu", "a" * 63, "9-lives"]
INVALID = ["", "acme#eu", "Acme", "-acme", "acme eu", "a" * 64, "acme/eu", "acme\n", "ácme", " acme"]


@pytest.mark.parametrize("name", VALID)
def test_valid_tenant_names_are_accepted(name: str) -> None:
    assert check_tenant_name(name) == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_tenant_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidTenantName):
        check_tenant_name(name)


@pytest.mark.parametrize("name", ["acme#eu", "Acme", ""])
def test_create_key_refuses_an_invalid_tenant_with_exit_code_2(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No local stack and no AWS: the name is refused before anything is written.
    code = main(["admin", "create-key", "--tenant", name, "--local-state", str(tmp_path / "none.json")])
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "invalid tenant name" in captured.err and "lowercase letters, digits and hyphens" in captured.err


def test_idempotency_records_of_two_tenants_never_share_an_id() -> None:
    assert IdempotencyKey("acme", "eu#k", "h").record_id != IdempotencyKey("acme#eu", "k", "h").record_id
    assert IdempotencyKey("a%23b", "k", "h").record_id != IdempotencyKey("a#b", "k", "h").record_id
    assert IdempotencyKey("acme", "k-1", "h").record_id == "acme#k-1"  # unchanged for ordinary keys
