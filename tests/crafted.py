"""Hostile inputs, made at test time (no binary fixtures): playlists pointing at a local "canary" file, and a
video whose header claims 100000x100000."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.media import generate
from videojobs.media import ffmpeg_exe

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


def make_h264_with_png(path: Path, *, corrupt_png: bool = False) -> Path:
    """An MKV with an H.264 stream (index 0) and a PNG stream (index 1). ``corrupt_png`` zeroes the width in the
    PNG header: a png decoder that opens it logs ``Picture size 0x32 is invalid`` (proof that it ran)."""
    generate(
        path,
        *("-f", "lavfi", "-i", "testsrc2=size=176x144:rate=5:duration=1"),
        *("-f", "lavfi", "-i", "color=red:size=32x32:rate=5:duration=1"),
        *("-map", "0", "-map", "1", "-c:v:0", "libx264", "-preset", "ultrafast", "-c:v:1", "png", "-f", "matroska"),
    )
    if corrupt_png:
        data = bytearray(path.read_bytes())
        header = data.index(b"IHDR")
        data[header + 4 : header + 8] = bytes(4)
        path.write_bytes(bytes(data))
    return path


def make_png_only(path: Path) -> Path:
    """An MKV whose only video stream is PNG."""
    return generate(
        path, *("-f", "lavfi", "-i", "color=red:size=32x32:rate=5:duration=1", "-c:v", "png", "-f", "matroska")
    )


def make_streamed_mkv(path: Path, *, seconds: float) -> Path:
    """An MKV as ffmpeg writes it to a pipe: it cannot seek back to write the duration, so none is declared."""
    command = [ffmpeg_exe(), "-nostdin", "-loglevel", "error"]
    command += ["-f", "lavfi", "-i", f"testsrc2=size=176x144:rate=10:duration={seconds}"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", "-"]
    with path.open("wb") as out:
        subprocess.run(command, stdout=out, check=True)
    return path
