"""Signed playback links for HLS outputs, and the playlists served behind them.

A player fetches the master playlist and resolves every URI in it against the URL it fetched it from. Presigned
S3 URLs cannot survive that: the signature is in the query string, and a relative URI drops it. So the output's
``url`` is ``<api>/playback/<token>/master.m3u8``: the token (job, output, expiry and an HMAC over them, keyed by a
secret only this output has) is a path segment, which relative resolution keeps. The API serves the master
playlist as written (its variant URIs are relative, so they resolve under the same token) and every variant
playlist rewritten at read time, each segment URI replaced by a fresh presigned GET of the segment in S3. No
``Authorization`` header is needed anywhere, and segments never pass through the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

PATH = "/playback"
MASTER_PLAYLIST = "master.m3u8"
CONTENT_TYPE = "application/vnd.apple.mpegurl"

_TOKEN = re.compile(r"^(job_[0-9a-f]{32})\.(\d{1,2})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
# The only URIs our own playlists hold: file names in the playlist's folder.
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Token:
    job_id: str
    output_index: int
    expires_at: int
    """Unix seconds."""
    signature: str


def _signature(secret: str, job_id: str, output_index: int, expires_at: int) -> str:
    digest = hmac.new(secret.encode(), f"{job_id}.{output_index}.{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, job_id: str, output_index: int, expires_at: int) -> str:
    """The token of a playback link to one output, valid until ``expires_at`` (Unix seconds)."""
    return f"{job_id}.{output_index}.{expires_at}.{_signature(secret, job_id, output_index, expires_at)}"


def parse(token: str) -> Token | None:
    """The token's parts, or None when it is not a token at all. Says nothing of its validity."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    return Token(found[1], int(found[2]), int(found[3]), found[4])


def is_valid(token: Token, secret: str, now: float) -> bool:
    expected = _signature(secret, token.job_id, token.output_index, token.expires_at)
    return hmac.compare_digest(expected, token.signature) and token.expires_at > now


def master_url(base_url: str, token: str) -> str:
    return f"{base_url}{PATH}/{token}/{MASTER_PLAYLIST}"


def rewrite_media_playlist(text: str, url_for: Callable[[str], str]) -> str:
    """A variant playlist with every segment (and ``URI="…"`` attribute) replaced by ``url_for(name)``."""

    def absolute(uri: str) -> str:
        if not _FILE_NAME.match(uri):
            raise ValueError(f"unexpected URI in a playlist: {uri!r}")
        return url_for(uri)

    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            lines.append(_URI_ATTRIBUTE.sub(lambda found: f'URI="{absolute(found[1])}"', line))
        elif stripped:
            lines.append(absolute(stripped))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
