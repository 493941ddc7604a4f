"""The ffmpeg side of a chunked encode: which chunks, what each chunk encodes, and how the pieces are stitched.

Each chunk encodes an exact range of the input's frames, ``[start, end)`` by presentation time, rather than a
keyframe-aligned piece cut by stream copy: a source's keyframes need not fall anywhere near the chunk
boundaries, and a cut on them would give chunks of uneven length, boundaries off the HLS segment grid, or
duplicated and dropped frames. The worker seeks to the keyframe before ``start`` (``-ss`` without accurate
seek), decodes from there, ``trim`` keeps exactly the frames of its range, and each piece is written at its
place in the whole (``-output_ts_offset``), so that the chunks' MPEG-TS pieces, concatenated byte for byte,
carry the same frames at the same times as a single encode would. (Not ``-copyts``: a constant frame rate, as
HLS needs, would then fill the time before the chunk with copies of its first frame.) Every piece starts with an
IDR frame (a closed GOP), and HLS keyframes are forced on the same 2 s grid as the single encode's;
``chunk_seconds`` is a multiple of the segment length, so segment boundaries fall on chunk boundaries.

The stitch then copies streams only: each MP4 is its rendition's pieces plus its audio track (encoded once from
the whole input), with ``+faststart``; each HLS output is the same HLS muxer as the single encode's over its rungs'
pieces (its segments are the chunks' frames, cut on the same keyframes) and the master playlist as today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videojobs.media import Probe
from videojobs.models import OUTPUT_SPEC, HlsOutput, Mp4Output, StoredOutput
from videojobs.outputs import (
    HLS_CRF,
    HLS_KEYFRAME_OPTIONS,
    MAX_FPS,
    QUALITY,
    Made,
    collect_hls,
    collect_mp4,
    hls_heights,
    hls_muxer_options,
    hls_peak_bitrate,
    mp4_height,
    x264_options,
)

PIECE_DEMUXER = "mpegts"
TRACK_DEMUXER = "mov"


@dataclass(frozen=True)
class Rendition:
    """One video stream a chunk encodes: an MP4's, or one rung of an HLS ladder."""

    name: str
    output_index: int
    height: int
    options: tuple[str, ...]
    """The encoder's options, as the single encode gives that stream."""


def chunk_ranges(duration_seconds: float, chunk_seconds: int) -> list[tuple[float, float | None]]:
    """``[start, end)`` of each chunk, on multiples of ``chunk_seconds``; the last runs to the end of the input
    (None) and is between half and one and a half chunks long."""
    count = max(1, round(duration_seconds / chunk_seconds))
    return [
        (index * chunk_seconds, (index + 1) * chunk_seconds if index < count - 1 else None) for index in range(count)
    ]


def can_chunk(outputs: list[StoredOutput], probe: Probe) -> bool:
    """Chunks help only with video renditions to make. An input above ``MAX_FPS`` is left to the single encode:
    its ``fps`` filter would lay each chunk's frames on a grid of its own."""
    return bool(renditions(outputs, probe)) and (probe.metadata.fps or 0) <= MAX_FPS


def renditions(outputs: list[StoredOutput], probe: Probe) -> list[Rendition]:
    """Every video stream of the job's MP4 and HLS outputs, in output order."""
    if not probe.has_video:
        return []
    meta = probe.metadata
    width, height, fps = meta.width or 0, meta.height or 0, min(meta.fps or 25.0, MAX_FPS)
    found = []
    for index, output in enumerate(outputs):
        spec = OUTPUT_SPEC.validate_python(output.spec)
        if isinstance(spec, Mp4Output):
            made = mp4_height(spec, height)
            crf = QUALITY[spec.quality][0]
            found.append(Rendition(f"o{index}-{made}p", index, made, tuple(x264_options(crf))))
        elif isinstance(spec, HlsOutput):
            for rung in hls_heights(spec, height):
                peak = hls_peak_bitrate(width * rung / height, rung, fps)
                rate = ("-maxrate", str(peak), "-bufsize", str(2 * peak))
                # The HLS muxer takes constant frame rate only: the single encode evens a variable one out
                # (frames repeated or dropped); a piece, in MPEG-TS, must do the same.
                options = (*x264_options(HLS_CRF), *rate, *HLS_KEYFRAME_OPTIONS, "-fps_mode", "cfr")
                found.append(Rendition(f"o{index}-{rung}p", index, rung, options))
    return found


def chunk_input_options(offset_seconds: float) -> list[str]:
    """Before ``-i``: seek to the keyframe before the chunk (``offset_seconds`` from the input's start). Times are
    then counted from the chunk's start: frames before it are negative and ``trim`` drops them."""
    return ["-noaccurate_seek", "-ss", f"{offset_seconds:.6f}"]


def chunk_arguments(
    parts: list[Rendition], probe: Probe, offset: float, length: float | None, scratch: Path
) -> tuple[list[str], dict[str, Path]]:
    """The chunk's ffmpeg outputs (one MPEG-TS piece per rendition, video only) and where each is written. The
    chunk starts ``offset`` seconds after the input's start and lasts ``length`` (None: to the end)."""
    bounds = ["start=0"] if offset > 0 else []
    bounds += [f"end={length:.6f}"] if length is not None else []
    trim = f"trim={':'.join(bounds)}," if bounds else ""
    graph = f"[0:{probe.video_index}]{trim}split={len(parts)}" + "".join(f"[s{i}]" for i in range(len(parts)))
    graph += "".join(f";[s{i}]scale=-2:{part.height}[v{i}]" for i, part in enumerate(parts))
    arguments = ["-filter_complex", graph]
    paths = {}
    for i, part in enumerate(parts):
        paths[part.name] = scratch / f"{part.name}.ts"
        # Counted from the chunk's start while encoding (so a constant frame rate lays its grid from there, as
        # the single encode's from the input's start), the piece is written at the chunk's place in the whole;
        # never shifted to make timestamps positive, so the pieces line up.
        arguments += ["-map", f"[v{i}]", *part.options]
        arguments += ["-output_ts_offset", f"{offset:.6f}", "-avoid_negative_ts", "disabled"]
        arguments += ["-f", PIECE_DEMUXER, str(paths[part.name])]
    return arguments, paths


@dataclass
class StitchPlan:
    source: Path
    """The first input (a rendition's concatenated pieces); the others are in ``arguments``."""
    arguments: list[str]
    collectors: dict[int, Callable[[], Made]]


def plan_stitch(
    outputs: list[StoredOutput],
    parts: list[Rendition],
    videos: dict[str, Path],
    audio_tracks: dict[int, Path],
    scratch: Path,
) -> StitchPlan:
    """One ffmpeg command, stream copy only, that makes every MP4 and HLS output from the renditions' whole
    video (``videos``, the pieces concatenated) and each output's audio track."""
    inputs: list[str] = []
    video_input = {}
    for number, part in enumerate(parts):
        video_input[part.name] = number
        if number:
            inputs += ["-f", PIECE_DEMUXER, "-i", str(videos[part.name])]
    audio_input = {}
    for number, (index, track) in enumerate(sorted(audio_tracks.items()), start=len(parts)):
        audio_input[index] = number
        inputs += ["-f", TRACK_DEMUXER, "-i", str(track)]
    arguments: list[str] = []
    collectors: dict[int, Callable[[], Made]] = {}
    for index, output in enumerate(outputs):
        rungs = [part for part in parts if part.output_index == index]
        if not rungs:
            continue
        audio = ["-map", f"{audio_input[index]}:a"] if index in audio_input else []
        spec = OUTPUT_SPEC.validate_python(output.spec)
        if isinstance(spec, Mp4Output):
            path = scratch / f"{index}-mp4-{rungs[0].height}p.mp4"
            arguments += ["-map", f"{video_input[rungs[0].name]}:v", *audio, "-c", "copy"]
            arguments += ["-movflags", "+faststart", "-f", "mp4", str(path)]
            collectors[index] = _collect_mp4(path)
        else:
            directory = scratch / f"{index}-hls"
            directory.mkdir()
            streams = " ".join(
                f"v:{n}," + ("a:" + str(n) + "," if audio else "") + f"name:{part.height}p"
                for n, part in enumerate(rungs)
            )
            arguments += [argument for part in rungs for argument in ("-map", f"{video_input[part.name]}:v")]
            arguments += [argument for _ in rungs for argument in audio]
            arguments += ["-c", "copy", *hls_muxer_options(directory, streams)]
            collectors[index] = _collect_hls(directory)
    return StitchPlan(videos[parts[0].name], inputs + arguments, collectors)


def _collect_mp4(path: Path) -> Callable[[], Made]:
    return lambda: collect_mp4(path)


def _collect_hls(directory: Path) -> Callable[[], Made]:
    return lambda: collect_hls(directory)
