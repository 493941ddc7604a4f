"""How a job's outputs are made: one ffmpeg command for all of them, and the files it wrote, back as outputs.

The input is decoded once: its video goes through one ``split`` to every consumer (each MP4, each HLS rendition,
each set of thumbnails), and its audio is mapped into every output that carries sound. Nothing is ever scaled
up: an MP4 asked for above the input's height is made at the input's height, and HLS renditions above it are
dropped (when none is left, the ladder gets one rendition at the input's height).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

from videojobs import settings as env
from videojobs.errors import JobFailure
from videojobs.media import Probe
from videojobs.models import (
    OUTPUT_SPEC,
    AudioOutput,
    ErrorCode,
    HlsOutput,
    Mp4Output,
    StoredOutput,
    ThumbnailsOutput,
)

MAX_FPS = 60
# (x264 CRF, AAC bitrate) per MP4 quality.
QUALITY = {"low": (28, "96k"), "medium": (23, "128k"), "high": (19, "192k")}
HLS_SEGMENT_SECONDS = env.HLS_SEGMENT_SECONDS
HLS_KEYFRAME_SECONDS = 2  # every rendition cuts its segments on the same keyframes
HLS_AUDIO_BITRATE = "128k"
# A rendition's peak video bitrate: bits per pixel per frame (capped CRF keeps easy content smaller).
HLS_BITS_PER_PIXEL = 0.1
HLS_MIN_BITRATE = 150_000
MASTER_PLAYLIST = "master.m3u8"
AUDIO_FORMATS = {
    "mp3": ("libmp3lame", "192k", "mp3", "mp3", "audio/mpeg"),
    "aac": ("aac", "160k", "mp4", "m4a", "audio/mp4"),
}
# Encoding audio costs little next to video: seconds of work per second of input, on one core.
AUDIO_WORK_PER_SECOND = 0.01

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
}


@dataclass(frozen=True)
class MadeFile:
    path: Path
    name: str
    """Where it goes under the job's output prefix, e.g. ``1-hls/360p_00000.ts``."""

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.path.suffix, "application/octet-stream")


@dataclass
class Made:
    """An output's files once ffmpeg is done, and what to record about it."""

    files: list[MadeFile]
    main: str | None = None
    """The name of the file the output's ``url`` points at."""
    ordered: list[str] | None = None
    """Thumbnails: a name per requested image, in the order requested."""
    details: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None

    def stored(self, requested: StoredOutput, key_of: Callable[[str], str]) -> StoredOutput:
        main = next((file for file in self.files if file.name == self.main), None)
        return requested.model_copy(
            update={
                "key": key_of(self.main) if self.main else None,
                "keys": [key_of(name) for name in self.ordered] if self.ordered is not None else None,
                "size_bytes": sum(file.path.stat().st_size for file in self.files),
                "content_type": main.content_type if main else self.files[0].content_type,
                "details": self.details or None,
                "secret": requested.secret or self.secret,  # one made playable early keeps its links
            }
        )


@dataclass
class EncodePlan:
    arguments: list[str]
    """Everything after ``-i <input>``: the filter graph and every output."""
    collectors: list[Callable[[], Made]]
    """One per output, in the job's order: gathers its files after the encode."""
    work_seconds: float
    """Estimated encode time at ``pixels_per_second``: decoding plus every encode, in pixels."""


def plan_encode(outputs: list[StoredOutput], probe: Probe, scratch: Path, pixels_per_second: float) -> EncodePlan:
    """The one ffmpeg command for all of ``outputs``, writing under ``scratch``. Fails the job (permanently)
    when an output needs a stream the input lacks."""
    builder = _Builder(probe, scratch)
    collectors = []
    for index, output in enumerate(outputs):
        spec = OUTPUT_SPEC.validate_python(output.spec)
        if not isinstance(spec, AudioOutput) and not probe.has_video:
            raise JobFailure(ErrorCode.INVALID_MEDIA, f"a {spec.type} output needs a video stream; the input has none")
        # Every output type by name: a new one is a type error here (and fails loudly), not silently thumbnails.
        match spec:
            case AudioOutput():
                collectors.append(builder.audio(index, spec))
            case Mp4Output():
                collectors.append(builder.mp4(index, spec))
            case HlsOutput():
                collectors.append(builder.hls(index, spec))
            case ThumbnailsOutput():
                collectors.append(builder.thumbnails(index, spec))
            case _:
                assert_never(spec)
    duration = probe.metadata.duration_seconds or 0
    work = duration * builder.pixels_per_media_second / pixels_per_second + duration * builder.audio_work
    return EncodePlan(builder.arguments(), collectors, work)


@dataclass
class SidePlan:
    """A chunked encode's one pass over the whole input: what the chunks do not make."""

    arguments: list[str]
    collectors: dict[int, Callable[[], Made]]
    """By output index: the audio and thumbnails outputs, made whole here."""
    audio_tracks: dict[int, Path]
    """By output index: each MP4's and HLS output's audio, encoded as the single encode does, for the stitch."""


def plan_side_encode(outputs: list[StoredOutput], probe: Probe, scratch: Path) -> SidePlan:
    """For a chunked encode (``videojobs.chunk_plan``): the audio and thumbnails outputs, and the audio of the
    MP4 and HLS outputs, in one ffmpeg command over the whole input. Empty ``arguments``: nothing to do."""
    builder = _Builder(probe, scratch)
    collectors: dict[int, Callable[[], Made]] = {}
    tracks: dict[int, Path] = {}
    for index, output in enumerate(outputs):
        spec = OUTPUT_SPEC.validate_python(output.spec)
        match spec:
            case AudioOutput():
                collectors[index] = builder.audio(index, spec)
            case ThumbnailsOutput():
                collectors[index] = builder.thumbnails(index, spec)
            case Mp4Output() if probe.has_audio:
                tracks[index] = builder.audio_track(index, ["-c:a", "aac", "-b:a", QUALITY[spec.quality][1]])
            case HlsOutput() if probe.has_audio:
                tracks[index] = builder.audio_track(index, list(HLS_AUDIO_OPTIONS))
            case Mp4Output() | HlsOutput():
                pass
            case _:
                assert_never(spec)
    return SidePlan(builder.arguments(), collectors, tracks)


class _Builder:
    def __init__(self, probe: Probe, scratch: Path):
        self._probe = probe
        self._scratch = scratch
        meta = probe.metadata
        self._width, self._height = meta.width or 0, meta.height or 0
        self._fps = min(meta.fps or 25.0, MAX_FPS)
        # Never more than MAX_FPS: a 120 fps phone clip is made at 60.
        self._fps_filter = f"fps={MAX_FPS}," if (meta.fps or 0) > MAX_FPS else ""
        self._chains: list[str] = []
        self._outputs: list[str] = []
        self.pixels_per_media_second = self._width * self._height * (meta.fps or 25.0) if probe.has_video else 0.0
        self.audio_work = 0.0

    # -- the command -------------------------------------------------------------------------------------

    def arguments(self) -> list[str]:
        if not self._chains:
            return self._outputs
        branches = len(self._chains)
        graph = f"[0:{self._probe.video_index}]split={branches}" + "".join(f"[s{i}]" for i in range(branches))
        graph += "".join(f";[s{i}]{chain}[v{i}]" for i, chain in enumerate(self._chains))
        return ["-filter_complex", graph, *self._outputs]

    def _video(self, chain: str, height: int) -> str:
        """A branch of the split, scaled; returns its label. Counts its encode in the work estimate."""
        self._chains.append(chain)
        if height:
            self.pixels_per_media_second += self._width * height / self._height * height * self._fps
        return f"[v{len(self._chains) - 1}]"

    def _audio_map(self) -> list[str]:
        return ["-map", f"0:{self._probe.audio_index}"] if self._probe.has_audio else []

    # -- outputs -----------------------------------------------------------------------------------------

    def mp4(self, index: int, spec: Mp4Output) -> Callable[[], Made]:
        height = mp4_height(spec, self._height)
        crf, audio_bitrate = QUALITY[spec.quality]
        path = self._scratch / f"{index}-mp4-{height}p.mp4"
        label = self._video(f"{self._fps_filter}scale=-2:{height}", height)
        audio = ["-c:a", "aac", "-b:a", audio_bitrate] if self._probe.has_audio else []
        self.audio_work += AUDIO_WORK_PER_SECOND if self._probe.has_audio else 0
        self._outputs += [
            "-map",
            label,
            *self._audio_map(),
            *x264_options(crf),
            *audio,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(path),
        ]

        return lambda: collect_mp4(path)

    def hls(self, index: int, spec: HlsOutput) -> Callable[[], Made]:
        heights = hls_heights(spec, self._height)
        directory = self._scratch / f"{index}-hls"
        directory.mkdir()
        labels = [self._video(f"{self._fps_filter}scale=-2:{height}", height) for height in heights]
        audio = self._probe.has_audio
        video_options: list[str] = []
        for position, height in enumerate(heights):
            peak = hls_peak_bitrate(self._width * height / self._height, height, self._fps)
            video_options += [f"-maxrate:v:{position}", str(peak), f"-bufsize:v:{position}", str(2 * peak)]
        streams = " ".join(f"v:{n}," + (f"a:{n}," if audio else "") + f"name:{h}p" for n, h in enumerate(heights))
        self.audio_work += AUDIO_WORK_PER_SECOND * len(heights) if audio else 0
        self._outputs += [
            *[argument for label in labels for argument in ("-map", label)],
            *[argument for _ in heights for argument in self._audio_map()],
            *x264_options(HLS_CRF),
            *video_options,
            *HLS_KEYFRAME_OPTIONS,
            *(HLS_AUDIO_OPTIONS if audio else []),
            *hls_muxer_options(directory, streams),
        ]
        return lambda: collect_hls(directory)

    def thumbnails(self, index: int, spec: ThumbnailsOutput) -> Callable[[], Made]:
        duration = self._probe.metadata.duration_seconds
        if not duration:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "thumbnails need the input's duration, which it does not declare")
        if spec.count is not None:
            requested = [duration * (n + 0.5) / spec.count for n in range(spec.count)]  # the middle of each slice
        else:
            requested = list(spec.at_seconds or [])
        last_frame = max(duration - 1 / self._fps, 0)
        targets = [min(seconds, last_frame) for seconds in requested]
        directory = self._scratch / f"{index}-thumbnails"
        directory.mkdir()
        width = min(spec.width or self._width, self._width)
        label = self._video(
            f"setpts=PTS-STARTPTS,select='{_first_frames_at(sorted(set(targets)))}',scale={width}:-2", 0
        )
        # Each file is named by its frame's time in milliseconds, so every request finds its picture.
        self._outputs += [
            "-map",
            label,
            "-fps_mode",
            "passthrough",
            "-enc_time_base:v",
            "1:1000",
            "-frame_pts",
            "1",
            "-q:v",
            "3",
            "-f",
            "image2",
            str(directory / "%d.jpg"),
        ]

        def collect() -> Made:
            made = sorted(directory.glob("*.jpg"), key=lambda path: int(path.stem))
            if not made:
                raise JobFailure(ErrorCode.INVALID_MEDIA, "no picture could be decoded at the requested times")
            times = [int(path.stem) for path in made]
            ordered = []
            for seconds in targets:
                at = next(
                    (p for p, ms in zip(made, times, strict=True) if ms >= math.floor(seconds * 1000) - 1), made[-1]
                )
                ordered.append(f"{directory.name}/{at.name}")
            return Made(
                [MadeFile(path, f"{directory.name}/{path.name}") for path in made],
                ordered=ordered,
                details={
                    "resolution": _video_size(made[0]),
                    "times_seconds": [round(seconds, 3) for seconds in targets],
                },
            )

        return collect

    def audio_track(self, index: int, codec: list[str]) -> Path:
        path = self._scratch / f"{index}-audio-track.m4a"
        self._outputs += [*self._audio_map(), *codec, "-f", "mp4", str(path)]
        return path

    def audio(self, index: int, spec: AudioOutput) -> Callable[[], Made]:
        if not self._probe.has_audio:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "an audio output needs an audio stream; the input has none")
        codec, bitrate, muxer, extension, _ = AUDIO_FORMATS[spec.format]
        path = self._scratch / f"{index}-audio.{extension}"
        self.audio_work += AUDIO_WORK_PER_SECOND
        faststart = ["-movflags", "+faststart"] if muxer == "mp4" else []
        self._outputs += [*self._audio_map(), "-c:a", codec, "-b:a", bitrate, *faststart, "-f", muxer, str(path)]
        return lambda: Made([MadeFile(path, path.name)], main=path.name)


# -- what the single encode and the chunked one (``videojobs.chunk_plan``) share ------------------------------

HLS_CRF = 23
HLS_KEYFRAME_OPTIONS = ("-force_key_frames", f"expr:gte(t,n_forced*{HLS_KEYFRAME_SECONDS})", "-sc_threshold", "0")
HLS_AUDIO_OPTIONS = ("-c:a", "aac", "-b:a", HLS_AUDIO_BITRATE, "-ac", "2")


def x264_options(crf: int) -> list[str]:
    """The video encoder of every MP4 and HLS rendition."""
    return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p"]


def below_source(height: int, source_height: int) -> int:
    """Never scaled up; an even height (x264 needs it)."""
    return min(height, source_height - source_height % 2)


def mp4_height(spec: Mp4Output, source_height: int) -> int:
    return below_source(spec.height, source_height)


def hls_heights(spec: HlsOutput, source_height: int) -> list[int]:
    """The ladder's rungs, tallest first: those above the source are dropped (at least one is left)."""
    heights = sorted((h for h in spec.heights if h <= source_height), reverse=True)
    return heights or [below_source(source_height, source_height)]


def hls_peak_bitrate(width: float, height: int, fps: float) -> int:
    return max(int(width * height * fps * HLS_BITS_PER_PIXEL), HLS_MIN_BITRATE)


def hls_muxer_options(
    directory: Path, streams: str, *, playlist_type: str = "vod", start_number: int | None = None
) -> list[str]:
    """The HLS muxer, after its streams: playlists of ``HLS_SEGMENT_SECONDS`` segments (VOD unless said; an
    ``event`` playlist grows) and the master; ``start_number`` numbers the first segment."""
    return [
        "-f",
        "hls",
        "-hls_time",
        str(HLS_SEGMENT_SECONDS),
        *(["-start_number", str(start_number)] if start_number is not None else []),
        "-hls_playlist_type",
        playlist_type,
        "-hls_flags",
        "independent_segments",
        "-hls_segment_type",
        "mpegts",
        "-var_stream_map",
        streams,
        "-master_pl_name",
        MASTER_PLAYLIST,
        "-hls_segment_filename",
        str(directory / "%v_%05d.ts"),
        str(directory / "%v.m3u8"),
    ]


def collect_mp4(path: Path) -> Made:
    return Made([MadeFile(path, path.name)], main=path.name, details={"resolution": _video_size(path)})


def collect_hls(directory: Path) -> Made:
    files = [MadeFile(path, f"{directory.name}/{path.name}") for path in sorted(directory.iterdir())]
    return Made(
        files,
        main=f"{directory.name}/{MASTER_PLAYLIST}",
        details={"renditions": variants(directory / MASTER_PLAYLIST)},
        secret=secrets.token_urlsafe(32),
    )


def _first_frames_at(targets: list[float]) -> str:
    """A ``select`` expression taking the first frame at or after each target time (and no other): a frame is
    taken when some target lies between the previously taken frame and it."""
    crossed = "+".join(f"gte(t,{t:.3f})*(isnan(prev_selected_t)+lt(prev_selected_t,{t:.3f}))" for t in targets)
    return f"gt({crossed},0)"


def _video_size(path: Path) -> dict[str, int]:
    import av

    with av.open(str(path)) as made:
        context = made.streams.video[0].codec_context
        return {"width": context.width, "height": context.height}


_STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:(.*)")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def variants(master: Path) -> list[dict[str, Any]]:
    """The renditions a master playlist lists: height, width, peak bandwidth, codecs and playlist name."""
    lines = master.read_text().splitlines()
    found = []
    for number, line in enumerate(lines):
        match = _STREAM_INF.match(line)
        if not match:
            continue
        attributes = {key: value.strip('"') for key, value in _ATTRIBUTE.findall(match[1])}
        width, height = (int(part) for part in attributes["RESOLUTION"].split("x"))
        found.append(
            {
                "height": height,
                "width": width,
                "bandwidth": int(attributes["BANDWIDTH"]),
                "codecs": attributes.get("CODECS"),
                "playlist": lines[number + 1].strip(),
            }
        )
    return found
