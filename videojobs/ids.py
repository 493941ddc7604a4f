"""Identifiers: 128 random bits each, so they cannot be guessed or enumerated."""

import hashlib
import secrets


def new_job_id() -> str:
    return "job_" + secrets.token_hex(16)


def new_upload_id() -> str:
    return "upl_" + secrets.token_hex(16)


def new_api_key() -> str:
    return "vj_" + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """Only this digest is stored: a leaked table does not leak usable keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()
