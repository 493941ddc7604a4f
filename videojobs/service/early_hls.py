"""HLS playable before the job completes, with split and stitch.

As chunks finish, the coordinator publishes each HLS output's segments under the names the final output will
have (``<rung>p_<n>.ts`` in ``<index>-hls/``, ``n`` counted from the input's start): for chunk ``k``, once chunks
``0..k`` are all done (in order, so a playlist only ever grows at its end), it segments the chunk's MPEG-TS
piece of every rung with the HLS muxer (stream copy; the piece starts on a keyframe and ``chunk_seconds`` is a
multiple of the segment length, so the cuts fall where the stitch's do) with the chunk's audio encoded from the
input, uploads the segments, and appends them to an ``EVENT`` playlist per rung. The pieces keep their place
in time (``-copyts``), so the segments of consecutive chunks are continuous and no ``EXT-X-DISCONTINUITY`` is
needed; the media sequence is 0 and never moves. After the first chunk of every rung is uploaded, the master
playlist is written and the output is recorded playable (``StoredOutput.playable_key``: one write, hence one
``job.playable`` event). At completion the stitched output overwrites every one of these objects (the same
segment names, ``VOD`` playlists with ``EXT-X-ENDLIST``, the master), so the final output is the single
encode's as before; a player that started on the ``EVENT`` playlists reads on into the ``VOD`` ones.

The early segments' audio is encoded per chunk (AAC priming makes a few ms overlap at chunk boundaries) and
their timestamps may differ from the final segments' by a frame or two: a player's fragment alignment absorbs
both. The secret that signs the playback link is chosen here and kept by the final output, so a link handed
out early keeps working.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from videojobs import chunk_plan, media
from videojobs.chunk_store import Chunk
from videojobs.media import Probe
from videojobs.models import OUTPUT_SPEC, HlsOutput, Job, StoredOutput
from videojobs.object_store import ObjectStore
from videojobs.observability import logger
from videojobs.outputs import (
    CONTENT_TYPES,
    HLS_AUDIO_OPTIONS,
    HLS_SEGMENT_SECONDS,
    MASTER_PLAYLIST,
    hls_muxer_options,
    variants,
)

_ENTRY = re.compile(r"#EXTINF:([0-9.]+),[^\n]*\n([^#\n][^\n]*)")
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


class PlayableSink(Protocol):
    """What the coordinator's job needs to publish: where an output file goes, the keys written (removed if
    the attempt does not complete), and the write of an output made playable."""

    uploaded: list[str]

    def key_of(self, name: str) -> str: ...

    def output_playable(self, index: int, output: StoredOutput) -> None: ...


@dataclass
class _Ladder:
    """One HLS output's growing playlists."""

    index: int
    folder: str
    """``<index>-hls``: the output's folder, as the final output names it."""
    rungs: list[chunk_plan.Rendition]
    secret: str
    entries: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """By rung playlist (``240p``): (duration, segment name) in order."""


def event_playlist(entries: list[tuple[float, str]], target_seconds: int) -> str:
    """An ``EVENT`` media playlist of ``entries`` (duration, segment name), without ``EXT-X-ENDLIST``: players
    reload it and start from its beginning (``EXT-X-START``)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        f"#EXT-X-TARGETDURATION:{target_seconds}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-START:TIME-OFFSET=0",
    ]
    for duration, name in entries:
        lines += [f"#EXTINF:{duration:.6f},", name]
    return "\n".join(lines) + "\n"


def target_duration(segment_seconds: int) -> int:
    """The playlists' ``EXT-X-TARGETDURATION``, fixed from the start (an ``EVENT`` playlist may not change it):
    a segment runs from a forced keyframe to the one ``segment_seconds`` later, a frame more at most."""
    return segment_seconds + 1


def media_entries(text: str) -> list[tuple[float, str]]:
    """(duration, segment name) of each segment of a media playlist the HLS muxer wrote."""
    return [(float(duration), name.strip()) for duration, name in _ENTRY.findall(text)]


class EarlyHls:
    """Publishes the HLS outputs of a chunked encode as their chunks finish in order (see the module)."""

    def __init__(
        self,
        job: Job,
        probe: Probe,
        source: Path,
        scratch: Path,
        objects: ObjectStore,
        bucket: str,
        sink: PlayableSink,
        run: Callable[[Path, list[str], list[str]], None],
    ):
        self._job, self._probe, self._source, self._scratch = job, probe, source, scratch
        self._objects, self._bucket, self._sink, self._run = objects, bucket, sink, run
        parts = chunk_plan.renditions(job.outputs, probe)
        self._ladders = [
            _Ladder(index, f"{index}-hls", rungs, output.secret or secrets.token_urlsafe(32))
            for index, output in enumerate(job.outputs)
            if isinstance(OUTPUT_SPEC.validate_python(output.spec), HlsOutput)
            and (rungs := [part for part in parts if part.output_index == index])
        ]
        self.published = 0
        """Chunks ``0..published-1`` are in the playlists."""

    @property
    def wanted(self) -> bool:
        return bool(self._ladders)

    def publish_next(self, done: list[Chunk]) -> bool:
        """Publish the next chunk if it is done (its predecessors are published); returns whether it was."""
        chunk = next((chunk for chunk in done if chunk.index == self.published), None)
        if chunk is None:
            return False
        for ladder in self._ladders:
            self._publish_chunk(ladder, chunk)
        self.published += 1
        return True

    def _publish_chunk(self, ladder: _Ladder, chunk: Chunk) -> None:
        folder = self._scratch / f"early-{ladder.index}-{chunk.index}"
        folder.mkdir(parents=True)
        pieces = {file.rendition: file.key for file in chunk.files}
        paths = []
        for rung in ladder.rungs:
            path = folder / f"{rung.name}.ts"
            self._objects.download(self._bucket, pieces[rung.name], path)
            paths.append(path)
        made = folder / "hls"
        made.mkdir()
        offset = chunk.start_seconds - self._probe.start_seconds
        arguments, input_options = self._segment_arguments(ladder, chunk, paths, made, offset)
        self._run(paths[0], input_options, arguments)
        files = sorted(path for path in made.iterdir() if path.suffix == ".ts")
        uploads = [(path, self._sink.key_of(f"{ladder.folder}/{path.name}"), CONTENT_TYPES[".ts"]) for path in files]
        self._sink.uploaded.extend(key for _, key, _ in uploads)
        self._objects.upload_many(self._bucket, uploads)
        for rung in ladder.rungs:
            name = f"{rung.height}p"
            ladder.entries.setdefault(name, []).extend(media_entries((made / f"{name}.m3u8").read_text()))
            self._write(
                ladder, f"{name}.m3u8", event_playlist(ladder.entries[name], target_duration(HLS_SEGMENT_SECONDS))
            )
        if chunk.index == 0:
            self._write(ladder, MASTER_PLAYLIST, (made / MASTER_PLAYLIST).read_text())
            requested = self._job.outputs[ladder.index]
            playable = requested.model_copy(
                update={
                    "playable_key": self._sink.key_of(f"{ladder.folder}/{MASTER_PLAYLIST}"),
                    "secret": ladder.secret,
                    "details": {"renditions": variants(made / MASTER_PLAYLIST)},
                }
            )
            self._sink.output_playable(ladder.index, playable)
            logger.info("hls output playable", extra={"output_index": ladder.index})
        logger.info("early hls published", extra={"output_index": ladder.index, "chunk": chunk.index})
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()

    def _segment_arguments(
        self, ladder: _Ladder, chunk: Chunk, pieces: list[Path], made: Path, offset: float
    ) -> tuple[list[str], list[str]]:
        """The HLS muxer over the chunk's pieces (stream copy, their timestamps kept) and the chunk's audio,
        encoded from the input and laid at the pieces' start. Returns (arguments, input options)."""
        import av

        with av.open(str(pieces[0]), format=chunk_plan.PIECE_DEMUXER) as piece:
            start = (piece.start_time or 0) / 1_000_000
        arguments: list[str] = []
        for path in pieces[1:]:
            arguments += ["-f", chunk_plan.PIECE_DEMUXER, "-i", str(path)]
        audio = self._probe.has_audio
        if audio:
            audio_input = len(pieces)
            arguments += ["-codec_whitelist", media.CODEC_WHITELIST, "-ss", f"{chunk.start_seconds:.6f}"]
            arguments += ["-f", self._probe.demuxer, "-i", str(self._source)]
            end = f":end={chunk.end_seconds:.6f}" if chunk.end_seconds is not None else ""
            # With -copyts the input keeps its own times: trim the chunk's range, then lay it at the piece's start.
            trim = f"atrim=start={chunk.start_seconds:.6f}{end},asetpts=PTS-STARTPTS+{start:.6f}/TB"
            arguments += ["-filter_complex", f"[{audio_input}:{self._probe.audio_index}]{trim},asplit={len(pieces)}"]
            arguments[-1] += "".join(f"[a{n}]" for n in range(len(pieces)))
        for n in range(len(pieces)):
            arguments += ["-map", f"{n}:v"]
        for n in range(len(pieces)):
            arguments += ["-map", f"[a{n}]"] if audio else []
        streams = " ".join(
            f"v:{n}," + (f"a:{n}," if audio else "") + f"name:{rung.height}p" for n, rung in enumerate(ladder.rungs)
        )
        arguments += ["-c:v", "copy", *(HLS_AUDIO_OPTIONS if audio else []), "-muxdelay", "0", "-muxpreload", "0"]
        first_segment = round(offset / HLS_SEGMENT_SECONDS)
        arguments += hls_muxer_options(made, streams, playlist_type="event", start_number=first_segment)
        return arguments, ["-copyts"]

    def _write(self, ladder: _Ladder, name: str, text: str) -> None:
        key = self._sink.key_of(f"{ladder.folder}/{name}")
        self._sink.uploaded.append(key)
        self._objects.write(self._bucket, key, text.encode(), PLAYLIST_TYPE)
