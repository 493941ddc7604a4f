"""Test media, generated with the same ffmpeg the worker uses (no binary fixtures in the repository)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from videojobs.media import ffmpeg_exe


def generate(path: Path, *arguments: str) -> Path:
    """Run ffmpeg quietly with ``arguments`` (inputs, codecs, format) and write ``path``."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *arguments, str(path)], check=True)
    return path


def make_clip(
    path: Path, *, seconds: float = 2, width: int = 320, height: int = 240, audio: bool = True, rate: int = 25
) -> Path:
    """An H.264/AAC MP4 test pattern with a tone."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac", "-shortest"] if audio else []
    return generate(path, *inputs, *codecs)


def make_tone(path: Path, *, seconds: float = 2) -> Path:
    """An audio-only MP3."""
    return generate(path, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "libmp3lame")


def pad_media(path: Path, total_bytes: int) -> Path:
    """Grow an MP4 to ``total_bytes`` with a top-level ``free`` box, ISO BMFF's own padding: every reader skips
    it, so the file probes and transcodes as before while it uploads like a big file."""
    padding = total_bytes - path.stat().st_size - 8
    with path.open("ab") as file:
        file.write(struct.pack(">I4s", padding + 8, b"free"))
        zeros = bytes(8 * 1024 * 1024)
        while padding:
            padding -= file.write(zeros[: min(len(zeros), padding)])
    return path
