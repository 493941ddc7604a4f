"""Probing and encoding with the real ffmpeg and PyAV, on generated media."""

from pathlib import Path

import av
import pytest

from tests.media import make_clip, make_tone
from videojobs import media
from videojobs.errors import JobFailure
from videojobs.models import ErrorCode, Mp4Output


def test_probe_reports_the_clip_as_it_was_made(clip: Path):
    probed = media.probe(clip)
    assert probed.demuxer == "mov"
    assert probed.has_video and probed.has_audio
    meta = probed.metadata
    assert (meta.width, meta.height, meta.video_codec, meta.audio_codec) == (320, 240, "h264", "aac")
    assert meta.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert meta.fps == pytest.approx(25)
    assert meta.size_bytes == clip.stat().st_size


def test_probe_of_audio_only_file(tmp_path: Path):
    probed = media.probe(make_tone(tmp_path / "tone.mp3"))
    assert probed.has_audio and not probed.has_video
    assert probed.metadata.audio_codec == "mp3"


@pytest.mark.parametrize("content", [b"hello, this is text\n" * 50, b"\x00" * 4096, b""])
def test_probe_rejects_what_is_not_media(tmp_path: Path, content: bytes):
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(JobFailure) as failure:
        media.probe(path)
    assert failure.value.code == ErrorCode.INVALID_MEDIA


def test_probe_refuses_a_playlist_that_points_at_another_file(tmp_path: Path, clip: Path):
    playlist = tmp_path / "input"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{clip}\n#EXT-X-ENDLIST\n")
    with pytest.raises(JobFailure) as failure:
        media.probe(playlist)
    assert failure.value.code == ErrorCode.INVALID_MEDIA


def test_one_ffmpeg_run_writes_every_mp4_with_even_width_and_reports_progress(tmp_path: Path):
    source = make_clip(tmp_path / "wide.mp4", seconds=3, width=426, height=240)
    probed = media.probe(source)
    outputs = {144: tmp_path / "a.mp4", 180: tmp_path / "b.mp4"}
    arguments = []
    for height, path in outputs.items():
        arguments += media.mp4_arguments(Mp4Output(type="mp4", height=height), path, has_audio=True)
    fractions: list[float] = []
    media.run_ffmpeg(source, probed.demuxer, arguments, duration_seconds=probed.metadata.duration_seconds,
                     on_progress=fractions.append, timeout_seconds=120)

    assert fractions and fractions == sorted(fractions) and fractions[-1] > 0.9
    for height, path in outputs.items():
        with av.open(str(path)) as result:
            video = result.streams.video[0].codec_context
            assert (video.name, video.height, video.width % 2) == ("h264", height, 0)
            assert result.streams.audio[0].codec_context.name == "aac"
            assert result.duration / 1e6 == pytest.approx(3.0, abs=0.2)


def test_an_encode_past_its_time_limit_is_killed(tmp_path: Path, clip: Path):
    arguments = media.mp4_arguments(Mp4Output(type="mp4", height=4320), tmp_path / "huge.mp4", has_audio=True)
    with pytest.raises(media.EncodeTimeout):
        media.run_ffmpeg(clip, "mov", arguments, duration_seconds=2, on_progress=lambda _: None,
                         timeout_seconds=0.2)


def test_progress_callback_errors_stop_ffmpeg(tmp_path: Path, clip: Path):
    class Stop(Exception):
        pass

    def stop(_: float) -> None:
        raise Stop

    arguments = media.mp4_arguments(Mp4Output(type="mp4", height=240), tmp_path / "out.mp4", has_audio=True)
    with pytest.raises(Stop):
        media.run_ffmpeg(clip, "mov", arguments, duration_seconds=2, on_progress=stop, timeout_seconds=60)
