"""Identifiers: 128 random bits each, so they cannot be guessed or enumerated."""

import hashlib
import re
import secrets

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""Tenant names: lowercase letters, digits and hyphens, so that no separator of a composite key can hide in one."""


class InvalidTenantName(ValueError):
    pass


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid tenant name, else ``InvalidTenantName`` with a message for the operator."""
    if not TENANT_NAME.fullmatch(name):
        raise InvalidTenantName(
            f"invalid tenant name {name!r}: use 1 to 63 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    return name


def new_job_id() -> str:
    return "job_" + secrets.token_hex(16)


def new_upload_id() -> str:
    return "upl_" + secrets.token_hex(16)


def new_api_key() -> str:
    return "vj_" + secrets.token_urlsafe(32)


def key_prefix(api_key: str) -> str:
    """The start of a key, kept to tell keys apart in listings: 24 of its 256 random bits."""
    return api_key[:7]


def hash_api_key(api_key: str) -> str:
    """Only this digest is stored: a leaked table does not leak usable keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()
