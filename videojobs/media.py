"""Probing (PyAV) and encoding (the static ffmpeg from imageio-ffmpeg), with progress.

Only the downloaded input file is ever read: probing and ffmpeg both run with a demuxer allowlist and the
``file`` protocol only, so a playlist cannot make them open other files or URLs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from videojobs.errors import JobFailure
from videojobs.models import ErrorCode, MediaMetadata, Mp4Output

# Demuxers we accept (each entry as ffmpeg names it). Playlist and concat demuxers are absent on purpose.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "flv", "ogg", "wav", "mp3", "aac", "flac",
    "asf", "mpeg",
)
FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # only the worker needs it

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Probe:
    metadata: MediaMetadata
    demuxer: str
    """The first name of the detected demuxer: ffmpeg is forced to use it instead of guessing again."""
    has_video: bool
    has_audio: bool


def probe(path: Path) -> Probe:
    """What the input is. Anything that is not audio or video in an allowed container fails the job."""
    import av  # PyAV is heavy: only the worker imports it

    try:
        with av.open(str(path), options={"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": "file"}) as box:
            video = next(iter(box.streams.video), None)
            audio = next(iter(box.streams.audio), None)
            if video is None and audio is None:
                raise JobFailure(ErrorCode.INVALID_MEDIA, "the input has no audio or video stream")
            fps = video.average_rate if video is not None else None
            metadata = MediaMetadata(
                format=box.format.name,
                duration_seconds=round(box.duration / 1_000_000, 3) if box.duration else None,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                fps=round(float(fps), 3) if isinstance(fps, Fraction) and fps else None,
                video_codec=video.codec_context.codec.canonical_name if video is not None else None,
                audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
                bitrate=box.bit_rate or None,
                size_bytes=path.stat().st_size,
            )
            return Probe(metadata, box.format.name.split(",")[0], video is not None, audio is not None)
    except av.error.FFmpegError as error:
        raise JobFailure(ErrorCode.INVALID_MEDIA, "the input is not a supported audio or video file") from error


def mp4_arguments(spec: Mp4Output, destination: Path, has_audio: bool) -> list[str]:
    """H.264/AAC MP4 scaled to the height; ``-2`` keeps the aspect with an even width, as x264 needs."""
    audio = ["-c:a", "aac", "-b:a", "128k"] if has_audio else ["-an"]
    return [
        "-map", "0:v:0", *(["-map", "0:a:0"] if has_audio else []),
        "-vf", f"scale=-2:{spec.height}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-pix_fmt", "yuv420p", *audio, "-movflags", "+faststart", "-f", "mp4", str(destination),
    ]


class EncodeTimeout(Exception):
    """ffmpeg ran past its wall-clock limit."""


def run_ffmpeg(
    source: Path, demuxer: str, output_arguments: list[str], *, duration_seconds: float | None,
    on_progress: Callable[[float], None], timeout_seconds: float,
) -> None:
    """Run one ffmpeg over the input (one decode for every output) and report progress as a fraction 0..1.

    ``on_progress`` may raise to stop the encode (e.g. the job was taken away): ffmpeg is killed first.
    """
    command = [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-protocol_whitelist", "file", "-f", demuxer, "-i", str(source),
        *output_arguments, "-progress", "pipe:1", "-nostats",
    ]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   start_new_session=True)
        # A watchdog rather than a check between progress lines: a stuck ffmpeg may print nothing at all.
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill(process)

        watchdog = threading.Timer(timeout_seconds, expire)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and duration_seconds and value.isdigit():
                    on_progress(min(int(value) / 1_000_000 / duration_seconds, 1.0))
            returncode = process.wait()
        except BaseException:
            _kill(process)
            raise
        finally:
            watchdog.cancel()
        if timed_out.is_set():
            raise EncodeTimeout(f"ffmpeg ran longer than {timeout_seconds:.0f} s")
        if returncode != 0:
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"ffmpeg exited with {returncode}: {' | '.join(detail)}")


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
