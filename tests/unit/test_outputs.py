"""The one ffmpeg command a job's outputs make: one decode, one split, nothing scaled up."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from videojobs import outputs
from videojobs.errors import JobFailure
from videojobs.media import Probe
from videojobs.models import ErrorCode, MediaMetadata, StoredOutput
from videojobs.outputs import plan_encode

FULL_HD = Probe(MediaMetadata(format="mov", duration_seconds=10, width=1920, height=1080, fps=30), "mov", 0, 1)
SILENT_720 = Probe(MediaMetadata(format="mov", duration_seconds=10, width=1280, height=720, fps=120), "mov", 2, None)
TONE = Probe(MediaMetadata(format="mp3", duration_seconds=10), "mp3", None, 0)


def plan(probe: Probe, *specs: dict, tmp_path: Path):
    return plan_encode([StoredOutput(spec=spec) for spec in specs], probe, tmp_path, pixels_per_second=60e6)


def graph(arguments: list[str]) -> str:
    return arguments[arguments.index("-filter_complex") + 1]


def test_every_video_output_is_a_branch_of_one_split_of_one_decode(tmp_path: Path):
    made = plan(
        FULL_HD,
        {"type": "mp4", "height": 720},
        {"type": "hls", "heights": [1080, 480]},
        {"type": "thumbnails", "count": 3},
        {"type": "audio", "format": "mp3"},
        tmp_path=tmp_path,
    )
    filters = graph(made.arguments)
    assert made.arguments.count("-filter_complex") == 1 and filters.startswith("[0:0]split=4[s0][s1][s2][s3];")
    assert "scale=-2:720" in filters and "scale=-2:1080" in filters and "scale=-2:480" in filters
    assert made.arguments.count("-i") == 0  # the input is given once, by run_ffmpeg
    assert len(made.collectors) == 4
    hls = made.arguments.index("hls")
    assert made.arguments[made.arguments.index("-var_stream_map") + 1] == "v:0,a:0,name:1080p v:1,a:1,name:480p"
    assert hls < made.arguments.index("-var_stream_map")


def test_nothing_is_scaled_up(tmp_path: Path):
    made = plan(
        SILENT_720,
        {"type": "mp4", "height": 1080},
        {"type": "hls", "heights": [2160, 1080, 360]},
        {"type": "hls", "heights": [1440]},
        {"type": "thumbnails", "count": 1, "width": 4000},
        tmp_path=tmp_path,
    )
    filters = graph(made.arguments)
    assert "scale=-2:1080" not in filters and "scale=-2:2160" not in filters and "scale=-2:1440" not in filters
    assert filters.count("scale=-2:720") == 2  # the MP4 at the input's height; the ladder left with nothing
    assert "scale=-2:360" in filters and "scale=1280:-2" in filters
    streams = [made.arguments[i + 1] for i, a in enumerate(made.arguments) if a == "-var_stream_map"]
    assert streams == ["v:0,name:360p", "v:0,name:720p"]  # no audio in the input: none in the ladder


def test_a_fast_input_is_made_at_60_fps_and_its_work_estimate_counts_every_encode(tmp_path: Path):
    one = plan(SILENT_720, {"type": "mp4", "height": 360}, tmp_path=tmp_path / "a")
    two = plan(SILENT_720, {"type": "mp4", "height": 360}, {"type": "mp4", "height": 720}, tmp_path=tmp_path / "b")
    assert "fps=60,scale=-2:360" in graph(one.arguments)
    assert 0 < one.work_seconds < two.work_seconds


def test_audio_only_jobs_need_no_filter_graph(tmp_path: Path):
    made = plan(TONE, {"type": "audio", "format": "aac"}, tmp_path=tmp_path)
    assert "-filter_complex" not in made.arguments
    assert made.arguments[:2] == ["-map", "0:0"] and made.arguments[-1].endswith("0-audio.m4a")


@pytest.mark.parametrize(
    ("probe", "spec"),
    [
        (TONE, {"type": "hls", "heights": [360]}),
        (TONE, {"type": "thumbnails", "count": 2}),
        (SILENT_720, {"type": "audio", "format": "mp3"}),
    ],
)
def test_an_output_needing_a_stream_the_input_lacks_fails_the_job(tmp_path: Path, probe: Probe, spec: dict):
    with pytest.raises(JobFailure) as failure:
        plan(probe, spec, tmp_path=tmp_path)
    assert failure.value.code == ErrorCode.INVALID_MEDIA


def test_thumbnails_take_the_first_frame_at_each_time_within_the_input(tmp_path: Path):
    made = plan(FULL_HD, {"type": "thumbnails", "at_seconds": [3, 1, 99]}, tmp_path=tmp_path)
    select = graph(made.arguments).split("select='", 1)[1].split("'", 1)[0]
    # Sorted, and a time past the end moved to the last frame (10 s at 30 fps: 9.967 s).
    assert select.index("gte(t,1.000)") < select.index("gte(t,3.000)") < select.index("gte(t,9.967)")


def test_an_output_type_the_plan_does_not_know_fails_loudly_instead_of_becoming_thumbnails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    class GifOutput(BaseModel):  # a type added to the API without a branch in plan_encode
        type: str = "gif"

    monkeypatch.setattr(outputs, "OUTPUT_SPEC", SimpleNamespace(validate_python=lambda spec: GifOutput()))
    with pytest.raises(AssertionError, match="GifOutput"):
        plan(FULL_HD, {"type": "gif"}, tmp_path=tmp_path)
