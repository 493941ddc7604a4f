"""Probing (PyAV) and encoding (the static ffmpeg from imageio-ffmpeg), with progress.

Only the downloaded input file is ever read. Probing and ffmpeg both run with a demuxer allowlist and the
``file`` protocol only, and ffmpeg is forced to the demuxer the probe found, so a playlist (HLS, concat, DASH…)
can never make them open another file or a URL. Before anything is decoded the input must also pass the codec
allowlist and the size limits.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from videojobs.errors import JobFailure
from videojobs.models import ErrorCode, MediaMetadata

# Demuxers we accept (each entry as ffmpeg names it). Playlist and concat demuxers are absent on purpose.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "flv",
    "ogg",
    "wav",
    "mp3",
    "aac",
    "flac",
    "asf",
    "mpeg",
)
FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)

# Decoders we run on untrusted input (canonical codec names): the common ones, not every decoder ffmpeg has.
ALLOWED_VIDEO_CODECS = frozenset(
    {
        "h264",
        "hevc",
        "av1",
        "vp8",
        "vp9",
        "mpeg4",
        "mpeg2video",
        "mpeg1video",
        "mjpeg",
        "prores",
        "dnxhd",
        "theora",
        "vc1",
        "wmv1",
        "wmv2",
        "wmv3",
        "h263",
        "flv1",
        "msmpeg4v2",
        "msmpeg4v3",
        "ffv1",
        "rawvideo",
    }
)
ALLOWED_AUDIO_CODECS = frozenset(
    {
        "aac",
        "mp3",
        "mp2",
        "mp1",
        "ac3",
        "eac3",
        "opus",
        "vorbis",
        "flac",
        "alac",
        "wmav1",
        "wmav2",
        "wmapro",
        "pcm_s16le",
        "pcm_s16be",
        "pcm_s24le",
        "pcm_s24be",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_u8",
        "pcm_alaw",
        "pcm_mulaw",
        "amr_nb",
        "amr_wb",
        "dts",
    }
)

# Text formats that point at other files. The demuxer allowlist already refuses them; recognising them
# gives the client the precise error.
PLAYLIST_SIGNATURES = (b"#extm3u", b"#ext-x-", b"ffconcat", b"[playlist]", b"<?xml", b"<mpd", b"<smil")

# How often the watchdog looks at the stop request and the clock.
WATCH_INTERVAL_SECONDS = 0.1

# libav says so when a header declares a frame size it refuses to allocate (and then reports 0x0).
_INVALID_PICTURE_SIZE = re.compile(r"Picture size (\d+)x(\d+) is invalid")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # only the worker needs it

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Limits:
    """Inputs beyond these fail with ``input_too_large`` before anything is decoded."""

    max_dimension: int = 8192
    max_pixels: int = 8192 * 4320
    max_duration_seconds: float = 4 * 3600
    max_streams: int = 16


@dataclass(frozen=True)
class Probe:
    metadata: MediaMetadata
    demuxer: str
    """The first name of the detected demuxer: ffmpeg is forced to use it instead of guessing again."""
    video_index: int | None
    """The input stream ffmpeg maps as video (never cover art), by its absolute index."""
    audio_index: int | None

    @property
    def has_video(self) -> bool:
        return self.video_index is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_index is not None


def probe(path: Path, limits: Limits = Limits()) -> Probe:
    """What the input is. Anything that is not audio or video in an allowed container and codec fails the job,
    as does an input beyond ``limits``."""
    import av  # PyAV is heavy: only the worker imports it
    import av.logging

    with path.open("rb") as file:
        head = file.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(PLAYLIST_SIGNATURES):
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "playlists and manifests are not accepted: upload the media")

    if av.logging.get_level() is None:  # PyAV passes libav's messages on only from a level
        av.logging.set_level(av.logging.WARNING)
    try:
        with (
            av.logging.Capture() as messages,
            av.open(str(path), options={"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": "file"}) as box,
        ):
            _check_declared_size(messages)
            return _describe(box, path, limits)
    except av.error.ArgumentError as error:  # the format was recognised, and it is not on the allowlist
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "the input's format is not accepted") from error
    except av.error.FFmpegError as error:
        _check_declared_size(messages)
        raise JobFailure(ErrorCode.INVALID_MEDIA, "the input is not a supported audio or video file") from error


def _check_declared_size(messages: list[tuple[int, str, str]]) -> None:
    for _, _, text in messages:
        found = _INVALID_PICTURE_SIZE.search(text)
        if found:
            raise JobFailure(
                ErrorCode.INPUT_TOO_LARGE, f"the input declares a {found[1]}x{found[2]} picture, beyond any limit"
            )


def _describe(box, path: Path, limits: Limits) -> Probe:  # type: ignore[no-untyped-def]
    import av

    streams = list(box.streams)
    if len(streams) > limits.max_streams:
        raise JobFailure(
            ErrorCode.INPUT_TOO_LARGE,
            f"the input has {len(streams)} streams; at most {limits.max_streams} are accepted",
        )
    cover_art = av.stream.Disposition.attached_pic
    video = next((s for s in box.streams.video if not s.disposition & cover_art), None)
    audio = next(iter(box.streams.audio), None)
    if video is None and audio is None:
        raise JobFailure(ErrorCode.INVALID_MEDIA, "the input has no audio or video stream")

    width = height = rotation = None
    if video is not None:
        width, height = video.codec_context.width, video.codec_context.height
        if not (width and height):
            raise JobFailure(ErrorCode.INVALID_MEDIA, "the input's video has no frame size")
        if max(width, height) > limits.max_dimension or width * height > limits.max_pixels:
            raise JobFailure(
                ErrorCode.INPUT_TOO_LARGE,
                f"the input's video is {width}x{height}; at most "
                f"{limits.max_dimension} per side and {limits.max_pixels} pixels are accepted",
            )
    duration = round(box.duration / 1_000_000, 3) if box.duration else None
    if duration is not None and duration > limits.max_duration_seconds:
        raise JobFailure(
            ErrorCode.INPUT_TOO_LARGE,
            f"the input lasts {duration:.0f} s; at most {limits.max_duration_seconds:.0f} s are accepted",
        )
    for stream, allowed in ((video, ALLOWED_VIDEO_CODECS), (audio, ALLOWED_AUDIO_CODECS)):
        if stream is not None and stream.codec_context.codec.canonical_name not in allowed:
            raise JobFailure(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"the {stream.type} codec {stream.codec_context.codec.canonical_name} is not accepted",
            )
    if video is not None:
        rotation = _rotation(box, video)
        if rotation in (90, 270):  # ffmpeg turns the picture upright: what the player shows is what we make
            width, height = height, width

    fps = video.average_rate if video is not None else None
    metadata = MediaMetadata(
        format=box.format.name,
        duration_seconds=duration,
        width=width,
        height=height,
        fps=round(float(fps), 3) if isinstance(fps, Fraction) and fps else None,
        video_codec=video.codec_context.codec.canonical_name if video is not None else None,
        audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
        bitrate=box.bit_rate or None,
        size_bytes=path.stat().st_size,
        rotation=rotation,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        stream_count=len(streams),
    )
    return Probe(
        metadata,
        box.format.name.split(",")[0],
        video.index if video is not None else None,
        audio.index if audio is not None else None,
    )


def _rotation(box, video) -> int:  # type: ignore[no-untyped-def]
    """The display rotation (0, 90, 180, 270): PyAV shows it on decoded frames, so decode the first one."""
    import av

    try:
        frame = next(box.decode(video), None)
    except av.error.FFmpegError:
        return 0  # ffmpeg will meet the same data and fail the job with its own message
    return int(getattr(frame, "rotation", 0) or 0) % 360 if frame is not None else 0


class EncodeTimeout(Exception):
    """ffmpeg ran past its wall-clock limit."""


class EncodeStopped(Exception):
    """ffmpeg was stopped on request (the job was cancelled, taken away or handed on)."""


def run_ffmpeg(
    source: Path,
    demuxer: str,
    output_arguments: Sequence[str],
    *,
    duration_seconds: float | None,
    on_progress: Callable[[float], None],
    timeout_seconds: float,
    stop: threading.Event | None = None,
    input_options: Sequence[str] = (),
) -> None:
    """Run one ffmpeg over the input (one decode for every output) and report progress as a fraction 0..1.

    ffmpeg is killed when ``stop`` is set (``EncodeStopped``), when it runs past ``timeout_seconds``
    (``EncodeTimeout``), or when ``on_progress`` raises (the exception propagates).
    """
    command = [
        ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-progress",
        "pipe:1",
        "-nostats",
        "-protocol_whitelist",
        "file",
        *input_options,
        "-f",
        demuxer,
        "-i",
        str(source),
        *output_arguments,
    ]
    with tempfile.TemporaryFile() as stderr:
        # In the worker's process group, so that whatever kills the worker's group (a container stop) kills it too.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        finished, stopped, timed_out = threading.Event(), threading.Event(), threading.Event()
        deadline = time.monotonic() + timeout_seconds

        def watch() -> None:
            # Not a check between progress lines: a stuck ffmpeg may print nothing at all.
            while not finished.wait(WATCH_INTERVAL_SECONDS):
                if stop is not None and stop.is_set():
                    stopped.set()
                elif time.monotonic() > deadline:
                    timed_out.set()
                else:
                    continue
                _kill(process)
                return

        watchdog = threading.Thread(target=watch, name="ffmpeg-watchdog", daemon=True)
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
            finished.set()
            watchdog.join()
        if stopped.is_set():
            raise EncodeStopped("ffmpeg was stopped")
        if timed_out.is_set():
            raise EncodeTimeout(f"ffmpeg ran longer than {timeout_seconds:.0f} s")
        if returncode != 0:
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"ffmpeg exited with {returncode}: {' | '.join(detail)}")


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
