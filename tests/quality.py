"""Measures of an encode, to hold a chunked (stitched) encode to a single encode of the same request."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Timeline:
    video_times: list[float]
    """Every video frame's presentation time (seconds), in order."""
    frame_seconds: float
    video_end: float
    audio_end: float | None
    video_bytes: int

    @property
    def drift(self) -> float:
        """Where the audio ends relative to the video (seconds)."""
        return (self.audio_end or self.video_end) - self.video_end


def timeline(path: Path) -> Timeline:
    with av.open(str(path)) as box:
        video = box.streams.video[0]
        packets = [packet for packet in box.demux(video) if packet.pts is not None]
        times = sorted(float(packet.pts * video.time_base) for packet in packets)
        size = sum(packet.size for packet in packets)
        rate = video.average_rate or video.guessed_rate
        frame = 1 / float(rate) if rate else (times[-1] - times[0]) / max(len(times) - 1, 1)
    audio_end = None
    with av.open(str(path)) as box:
        if box.streams.audio:
            audio = box.streams.audio[0]
            ends = [float((p.pts + p.duration) * audio.time_base) for p in box.demux(audio) if p.pts is not None]
            audio_end = max(ends)
    return Timeline(times, frame, times[-1] + frame, audio_end, size)


def frame_psnr(encoded: Path, source: Path) -> list[float]:
    """Per-frame luma PSNR of ``encoded`` against ``source`` scaled to its size, frame by frame in order (a
    dropped, duplicated or shifted frame shows as a deep dip from there on)."""
    scores = []
    with av.open(str(encoded)) as made, av.open(str(source)) as original:
        made_frames = made.decode(video=0)
        for theirs in original.decode(video=0):
            ours = next(made_frames, None)
            if ours is None:
                break
            a = ours.to_ndarray(format="gray").astype(np.float64)
            b = theirs.reformat(width=ours.width, height=ours.height, format="gray").to_ndarray().astype(np.float64)
            mse = float(np.mean((a - b) ** 2))
            scores.append(99.0 if mse == 0 else 10 * math.log10(255**2 / mse))
    return scores


def decodes(path: Path) -> int:
    """How many video frames a file (an HLS segment) decodes to; raises if it does not decode."""
    with av.open(str(path)) as box:
        return sum(1 for _ in box.decode(video=0))
