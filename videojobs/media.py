"""Probing (PyAV) and encoding (the static ffmpeg from imageio-ffmpeg), with progress.

Only the downloaded input file is ever read. Probing and ffmpeg both run with a demuxer allowlist and the
``file`` protocol only, and ffmpeg is forced to the demuxer the probe found, so a playlist (HLS, concat, DASH…)
can never make them open another file or a URL. Both open decoders only from an allowlist (``codec_whitelist``,
by decoder name): a stream of any other codec is never decoded nor mapped, only reported in the probe's
``ignored_streams``. Before anything is decoded the input must also pass the size limits.

Probing and ffmpeg run in child processes with no AWS credentials in their environment and with resource limits
(address space, CPU time, open files): a decoder bug meets a process that can reach no tenant's data.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videojobs.errors import JobFailure
from videojobs.models import ErrorCode, IgnoredStream, MediaMetadata

if TYPE_CHECKING:  # PyAV is heavy: only the worker imports it, when it probes
    from av.container import InputContainer
    from av.stream import Stream
    from av.video.stream import VideoStream

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

# Decoders we run on untrusted input: canonical codec name -> the names of its software decoders (what
# ``codec_whitelist`` matches). The common codecs, not every decoder ffmpeg has.
VIDEO_DECODERS: dict[str, tuple[str, ...]] = {
    "h264": ("h264",),
    "hevc": ("hevc",),
    "av1": ("libdav1d", "av1"),
    "vp8": ("vp8", "libvpx"),
    "vp9": ("vp9", "libvpx-vp9"),
    "mpeg4": ("mpeg4",),
    "mpeg2video": ("mpeg2video", "mpegvideo"),
    "mpeg1video": ("mpeg1video",),
    "mjpeg": ("mjpeg",),
    "prores": ("prores",),
    "dnxhd": ("dnxhd",),
    "theora": ("theora",),
    "vc1": ("vc1",),
    "wmv1": ("wmv1",),
    "wmv2": ("wmv2",),
    "wmv3": ("wmv3",),
    "h263": ("h263",),
    "flv1": ("flv",),
    "msmpeg4v2": ("msmpeg4v2",),
    "msmpeg4v3": ("msmpeg4",),
    "ffv1": ("ffv1",),
    "rawvideo": ("rawvideo",),
}
_PCM = ("pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_alaw", "pcm_mulaw")
AUDIO_DECODERS: dict[str, tuple[str, ...]] = {
    "aac": ("aac", "aac_fixed"),
    "mp3": ("mp3float", "mp3"),
    "mp2": ("mp2float", "mp2"),
    "mp1": ("mp1float", "mp1"),
    "ac3": ("ac3", "ac3_fixed"),
    "eac3": ("eac3",),
    "opus": ("opus", "libopus"),
    "vorbis": ("vorbis", "libvorbis"),
    "flac": ("flac",),
    "alac": ("alac",),
    "wmav1": ("wmav1",),
    "wmav2": ("wmav2",),
    "wmapro": ("wmapro",),
    **{pcm: (pcm,) for pcm in _PCM},
    "amr_nb": ("amrnb", "libopencore_amrnb"),
    "amr_wb": ("amrwb", "libopencore_amrwb"),
    "dts": ("dca",),
}
ALLOWED_VIDEO_CODECS = frozenset(VIDEO_DECODERS)
ALLOWED_AUDIO_CODECS = frozenset(AUDIO_DECODERS)
CODEC_WHITELIST = ",".join(sorted({name for names in (VIDEO_DECODERS | AUDIO_DECODERS).values() for name in names}))

# Text formats that point at other files. The demuxer allowlist already refuses them; recognising them
# gives the client the precise error.
PLAYLIST_SIGNATURES = (b"#extm3u", b"#ext-x-", b"ffconcat", b"[playlist]", b"<?xml", b"<mpd", b"<smil")

# How often the watchdog looks at the stop request and the clock.
WATCH_INTERVAL_SECONDS = 0.1

# libav says so when a header declares a frame size it refuses to allocate (and then reports 0x0).
_INVALID_PICTURE_SIZE = re.compile(r"Picture size (\d+)x(\d+) is invalid")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # only the worker needs it

    exe: str = imageio_ffmpeg.get_ffmpeg_exe()  # the package ships no types
    return exe


@dataclass(frozen=True)
class ChildLimits:
    """Resource limits of a child process that reads untrusted media, set with ``setrlimit`` before it starts."""

    address_space_bytes: int
    cpu_seconds: int
    """CPU time of all its threads together."""
    open_files: int


PROBE_CHILD_LIMITS = ChildLimits(address_space_bytes=3 * 1024**3, cpu_seconds=120, open_files=64)
"""Python with PyAV probing (demux, one decoded frame, a packet scan): a 1080p H.264 clip probes within 0.5 GiB."""
ENCODE_ADDRESS_SPACE_BYTES = 16 * 1024**3
"""ffmpeg's address space: reserved, not resident (x264's threads and malloc arenas reserve a lot: a 1080p
3-rendition ladder at 16 threads each needs 2 to 4 GiB); it stops a runaway allocation, not a normal encode."""
ENCODE_OPEN_FILES = 256


@dataclass(frozen=True)
class Limits:
    """Inputs beyond these fail with ``input_too_large`` before anything is decoded."""

    max_dimension: int = 8192
    max_pixels: int = 8192 * 4320
    max_duration_seconds: float = 4 * 3600
    max_streams: int = 16
    probe_limits: ChildLimits = PROBE_CHILD_LIMITS


@dataclass(frozen=True)
class Probe:
    metadata: MediaMetadata
    demuxer: str
    """The first name of the detected demuxer: ffmpeg is forced to use it instead of guessing again."""
    video_index: int | None
    """The input stream ffmpeg maps as video (never cover art), by its absolute index."""
    audio_index: int | None
    start_seconds: float = 0.0
    """The input's first presentation time: a chunked encode counts its ranges from it."""

    @property
    def has_video(self) -> bool:
        return self.video_index is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_index is not None


PROBE_TIMEOUT_SECONDS = 120.0
"""Wall-clock limit of one probe (the packet scan of a long input included)."""


def probe(path: Path, limits: Limits = Limits(), *, timeout_seconds: float = PROBE_TIMEOUT_SECONDS) -> Probe:
    """What the input is. Anything that is not audio or video in an allowed container and codec fails the job,
    as does an input beyond ``limits``. Runs ``probe_here`` in a confined child process (``run_confined``)."""
    command = [sys.executable, "-m", "videojobs.media", "probe", str(path), json.dumps(asdict(limits))]
    try:
        finished = run_confined(command, limits.probe_limits, timeout_seconds=timeout_seconds)
    except subprocess.TimeoutExpired as error:
        raise JobFailure(
            ErrorCode.INVALID_MEDIA, f"probing the input took longer than {timeout_seconds:.0f} s"
        ) from error
    if finished.returncode < 0 or (finished.returncode == _CHILD_OUT_OF_MEMORY):
        # Killed by a resource limit (SIGKILL/SIGXCPU) or out of its address space: what the input asked for.
        raise JobFailure(ErrorCode.INVALID_MEDIA, "probing the input went beyond the worker's resource limits")
    if finished.returncode != 0:
        raise RuntimeError(f"the probe exited with {finished.returncode}: {finished.stderr.strip()[-500:]}")
    answer = json.loads(finished.stdout)
    if "failure" in answer:
        raise JobFailure(ErrorCode(answer["failure"]["code"]), answer["failure"]["message"])
    found = answer["probe"]
    return Probe(
        MediaMetadata.model_validate(found["metadata"]),
        found["demuxer"],
        found["video_index"],
        found["audio_index"],
        found["start_seconds"],
    )


def probe_here(path: Path, limits: Limits = Limits()) -> Probe:
    """``probe`` in this process: only ever run in the confined child (``python -m videojobs.media probe``)."""
    import av  # PyAV is heavy: only the worker imports it
    import av.logging

    with path.open("rb") as file:
        head = file.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(PLAYLIST_SIGNATURES):
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "playlists and manifests are not accepted: upload the media")

    if av.logging.get_level() is None:  # PyAV passes libav's messages on only from a level
        av.logging.set_level(av.logging.WARNING)
    options = {"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": "file", "codec_whitelist": CODEC_WHITELIST}
    try:
        with av.logging.Capture() as messages, av.open(str(path), options=options) as box:
            _check_declared_size(messages)
            found = _describe(box, path, limits)
        if found.metadata.duration_seconds is None:  # e.g. a streamed MKV: nothing in the header says
            with av.open(str(path), options=options) as box:
                duration = _measured_duration(box, found, limits.max_duration_seconds)
            found = replace(found, metadata=found.metadata.model_copy(update={"duration_seconds": duration}))
    except av.error.ArgumentError as error:  # the format was recognised, and it is not on the allowlist
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "the input's format is not accepted") from error
    except av.error.FFmpegError as error:
        _check_declared_size(messages)
        raise JobFailure(ErrorCode.INVALID_MEDIA, "the input is not a supported audio or video file") from error
    duration = found.metadata.duration_seconds
    if duration is not None and duration > limits.max_duration_seconds:
        raise JobFailure(
            ErrorCode.INPUT_TOO_LARGE,
            f"the input lasts {duration:.0f} s; at most {limits.max_duration_seconds:.0f} s are accepted",
        )
    return found


def _check_declared_size(messages: list[tuple[int, str, str]]) -> None:
    for _, _, text in messages:
        found = _INVALID_PICTURE_SIZE.search(text)
        if found:
            raise JobFailure(
                ErrorCode.INPUT_TOO_LARGE, f"the input declares a {found[1]}x{found[2]} picture, beyond any limit"
            )


def _codec_of(stream: Stream) -> str:
    context = getattr(stream, "codec_context", None)
    codec = getattr(context, "codec", None)
    return str(getattr(codec, "canonical_name", None) or getattr(context, "name", None) or "unknown")


def _describe(box: InputContainer, path: Path, limits: Limits) -> Probe:
    import av

    streams = list(box.streams)
    if len(streams) > limits.max_streams:
        raise JobFailure(
            ErrorCode.INPUT_TOO_LARGE,
            f"the input has {len(streams)} streams; at most {limits.max_streams} are accepted",
        )
    allowed_codecs = {"video": ALLOWED_VIDEO_CODECS, "audio": ALLOWED_AUDIO_CODECS}
    allowed = {s.index for s in streams if _codec_of(s) in allowed_codecs.get(s.type, ())}
    cover_art = av.stream.Disposition.attached_pic
    videos = [s for s in box.streams.video if not s.disposition & cover_art]
    audios = list(box.streams.audio)
    video = next((s for s in videos if s.index in allowed), None)
    audio = next((s for s in audios if s.index in allowed), None)
    for kind, present, chosen in (("video", videos, video), ("audio", audios, audio)):
        if present and chosen is None:  # dropping the picture or the sound would not be what was asked
            raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, f"the {kind} codec {_codec_of(present[0])} is not accepted")
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
        video_codec=_codec_of(video) if video is not None else None,
        audio_codec=_codec_of(audio) if audio is not None else None,
        bitrate=box.bit_rate or None,
        size_bytes=path.stat().st_size,
        rotation=rotation,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        stream_count=len(streams),
        ignored_streams=[IgnoredStream(index=s.index, codec=_codec_of(s)) for s in streams if s.index not in allowed],
    )
    return Probe(
        metadata,
        box.format.name.split(",")[0],
        video.index if video is not None else None,
        audio.index if audio is not None else None,
        box.start_time / 1_000_000 if box.start_time is not None else 0.0,
    )


def _measured_duration(box: InputContainer, found: Probe, limit_seconds: float) -> float | None:
    """The duration of the streams we would use, from their packets' timestamps: a demux-only scan (nothing is
    decoded) that stops as soon as the input is known to be over ``limit_seconds``."""
    used = [box.streams[index] for index in (found.video_index, found.audio_index) if index is not None]
    start = box.start_time / 1_000_000 if box.start_time else 0.0
    end = None
    for packet in box.demux(*used):
        if packet.pts is None or packet.time_base is None:
            continue
        finish = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        end = finish if end is None else max(end, finish)
        if end - start > limit_seconds:
            break
    return round(end - start, 3) if end is not None else None


def _rotation(box: InputContainer, video: VideoStream) -> int:
    """The display rotation (0, 90, 180, 270): PyAV shows it on decoded frames, so decode the first one."""
    import av

    try:
        frame = next(box.decode(video), None)
    except av.error.FFmpegError:
        return 0  # ffmpeg will meet the same data and fail the job with its own message
    return int(getattr(frame, "rotation", 0) or 0) % 360 if frame is not None else 0


# --- confined children ------------------------------------------------------------------------------------

_CHILD_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "LD_LIBRARY_PATH")
"""What a child keeps of the worker's environment: no credentials (``AWS_*``), no container endpoints."""
_CHILD_OUT_OF_MEMORY = 75


def child_environment() -> dict[str, str]:
    environment = {name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ}
    environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    return environment


def _apply_limits(limits: ChildLimits) -> Callable[[], None]:
    """What the child runs between fork and exec: only ``setrlimit`` calls (safe beside the worker's threads)."""
    wanted = (
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_NOFILE, limits.open_files),
    )

    def apply() -> None:
        for kind, value in wanted:
            hard = resource.getrlimit(kind)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (value, value))

    return apply


def _confinement(limits: ChildLimits) -> dict[str, Any]:
    return {"env": child_environment(), "preexec_fn": _apply_limits(limits), "stdin": subprocess.DEVNULL}


def run_confined(
    command: Sequence[str], limits: ChildLimits, *, timeout_seconds: float
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` without credentials and within ``limits``; killed after ``timeout_seconds``
    (``subprocess.TimeoutExpired``)."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds, **_confinement(limits))


def _child_main(arguments: list[str]) -> int:
    """``python -m videojobs.media probe PATH LIMITS_JSON``: the probe's answer as JSON on stdout."""
    _, path, limits_json = arguments
    raw = json.loads(limits_json)
    limits = Limits(**raw | {"probe_limits": ChildLimits(**raw["probe_limits"])})
    try:
        found = probe_here(Path(path), limits)
    except JobFailure as failure:
        print(json.dumps({"failure": {"code": failure.code.value, "message": failure.message}}))
        return 0
    except MemoryError:
        return _CHILD_OUT_OF_MEMORY
    answer = {
        "metadata": found.metadata.model_dump(mode="json"),
        "demuxer": found.demuxer,
        "video_index": found.video_index,
        "audio_index": found.audio_index,
        "start_seconds": found.start_seconds,
    }
    print(json.dumps({"probe": answer}))
    return 0


# --- encoding ----------------------------------------------------------------------------------------------


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
        "-codec_whitelist",
        CODEC_WHITELIST,
        *input_options,
        "-f",
        demuxer,
        "-i",
        str(source),
        *output_arguments,
    ]
    with tempfile.TemporaryFile() as stderr:
        # In the worker's process group, so that whatever kills the worker's group (a container stop) kills it too.
        # Its CPU time counts every thread: the wall-clock limit on every core, and a margin.
        limits = ChildLimits(
            ENCODE_ADDRESS_SPACE_BYTES, math.ceil(timeout_seconds * (os.cpu_count() or 1)) + 60, ENCODE_OPEN_FILES
        )
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, **_confinement(limits))
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


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
