"""Hostile inputs, made at test time (no binary fixtures): playlists pointing at a local "canary" file, and a
video whose header claims 100000x100000."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from tests.media import generate

CLAIMED_SIZE = 100_000


def make_canary(path: Path) -> Path:
    """A small, perfectly decodable MPEG-TS clip: if a worker ever followed a playlist to it, the job would
    succeed and make outputs from it."""
    return generate(
        path,
        *("-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25:duration=1", "-f", "lavfi", "-i", "sine=duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", "-f", "mpegts"),
    )


def hls_playlist(canary: Path) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{canary}\n#EXT-X-ENDLIST\n"


def concat_playlist(canary: Path) -> str:
    return f"ffconcat version 1.0\nfile '{canary}'\nduration 1\n"


def make_huge_header(path: Path) -> Path:
    """An AVI of 16x16 raw frames whose headers (``avih`` and the stream's ``BITMAPINFOHEADER``) declare
    100000x100000: what a decoder would have to allocate if it believed them."""
    generate(
        path,
        *("-f", "lavfi", "-i", "color=black:size=16x16:rate=5:duration=0.4"),
        *("-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "avi"),
    )
    data = bytearray(path.read_bytes())
    for chunk, body, size in _riff_chunks(data, 12, len(data)):
        if chunk == b"avih":  # MainAVIHeader: dwWidth, dwHeight at bytes 32 and 36
            struct.pack_into("<II", data, body + 32, CLAIMED_SIZE, CLAIMED_SIZE)
        elif chunk == b"strf" and size >= 40:  # BITMAPINFOHEADER: biWidth, biHeight at bytes 4 and 8
            struct.pack_into("<ii", data, body + 4, CLAIMED_SIZE, CLAIMED_SIZE)
    path.write_bytes(data)
    return path


def _riff_chunks(data: bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, body offset, size) of every leaf chunk of a RIFF file, descending into LISTs."""
    position = start
    while position + 8 <= end:
        chunk, size = bytes(data[position : position + 4]), struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk == b"LIST":
            yield from _riff_chunks(data, body + 4, body + size)
        else:
            yield chunk, body, size
        position = body + size + (size & 1)
