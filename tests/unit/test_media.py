"""Probing and running ffmpeg, with the real ffmpeg and PyAV on generated (and crafted) media."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.crafted import (
    concat_playlist,
    hls_playlist,
    make_canary,
    make_h264_with_png,
    make_huge_header,
    make_png_only,
    make_streamed_mkv,
)
from tests.media import make_clip, make_tone
from videojobs import media
from videojobs.errors import JobFailure
from videojobs.models import ErrorCode, IgnoredStream

DEFAULT_LIMITS = media.Limits()


def failure_of(path: Path, limits: media.Limits = DEFAULT_LIMITS) -> ErrorCode:
    with pytest.raises(JobFailure) as failure:
        media.probe(path, limits)
    return failure.value.code


def test_probe_reports_the_clip_as_it_was_made(clip: Path):
    probed = media.probe(clip)
    assert (probed.demuxer, probed.video_index, probed.audio_index) == ("mov", 0, 1)
    meta = probed.metadata
    assert (meta.width, meta.height, meta.video_codec, meta.audio_codec) == (320, 240, "h264", "aac")
    assert meta.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert meta.fps == pytest.approx(25)
    assert (meta.size_bytes, meta.rotation, meta.stream_count) == (clip.stat().st_size, 0, 2)


def test_probe_of_an_audio_file_with_cover_art_finds_no_video(tmp_path: Path):
    tone = make_tone(tmp_path / "tone.mp3")
    with_cover = tmp_path / "cover.mp3"
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(tone),
            "-f",
            "lavfi",
            "-i",
            "color=red:size=64x64",
            "-map",
            "0",
            "-map",
            "1",
            "-frames:v",
            "1",
            "-c:a",
            "copy",
            "-c:v",
            "mjpeg",
            "-disposition:v",
            "attached_pic",
            str(with_cover),
        ],
        check=True,
    )
    probed = media.probe(with_cover)
    assert probed.has_audio and not probed.has_video  # the picture is not a video to transcode
    assert probed.metadata.audio_codec == "mp3"


def test_a_rotated_phone_clip_is_measured_as_it_is_shown(tmp_path: Path, clip: Path):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-loglevel",
            "error",
            "-display_rotation",
            "90",
            "-i",
            str(clip),
            "-c",
            "copy",
            str(rotated),
        ],
        check=True,
    )
    meta = media.probe(rotated).metadata
    assert (meta.width, meta.height, meta.rotation) == (240, 320, 90)


@pytest.mark.parametrize("content", [b"hello, this is text\n" * 50, b"\x00" * 4096, b""])
def test_what_is_not_media_is_invalid_media(tmp_path: Path, content: bytes):
    path = tmp_path / "input"
    path.write_bytes(content)
    assert failure_of(path) == ErrorCode.INVALID_MEDIA


@pytest.mark.parametrize("playlist", [hls_playlist, concat_playlist])
def test_a_playlist_pointing_at_another_file_is_unsupported_and_refused_even_without_the_sniffing(
    tmp_path: Path, playlist, monkeypatch
):
    path = tmp_path / "input"
    path.write_text(playlist(make_canary(tmp_path / "canary.ts")))
    assert failure_of(path) == ErrorCode.UNSUPPORTED_FORMAT
    # Without recognising the text ourselves, libav's format allowlist still refuses it (with a vaguer code).
    monkeypatch.setattr(media, "PLAYLIST_SIGNATURES", (b"\xff" * 8,))
    assert failure_of(path) in (ErrorCode.UNSUPPORTED_FORMAT, ErrorCode.INVALID_MEDIA)


def test_forced_to_the_probed_demuxer_ffmpeg_cannot_follow_a_playlist(tmp_path: Path):
    # The attack the allowlist prevents: the hls demuxer would read the canary. Forced to a container demuxer
    # (what the worker does with the probe's answer) ffmpeg finds nothing to decode.
    playlist = tmp_path / "input"
    playlist.write_text(hls_playlist(make_canary(tmp_path / "canary.ts")))
    with pytest.raises(RuntimeError, match="ffmpeg exited"):
        media.run_ffmpeg(
            playlist,
            "mpegts",
            ["-map", "0", "-f", "null", "-"],
            duration_seconds=1,
            on_progress=lambda _: None,
            timeout_seconds=30,
        )


def test_a_header_claiming_100000x100000_is_input_too_large(tmp_path: Path):
    assert failure_of(make_huge_header(tmp_path / "huge.avi")) == ErrorCode.INPUT_TOO_LARGE


@pytest.mark.parametrize(
    "limits",
    [
        media.Limits(max_dimension=300),
        media.Limits(max_pixels=320 * 239),
        media.Limits(max_duration_seconds=1.5),
        media.Limits(max_streams=1),
    ],
    ids=["dimension", "pixels", "duration", "streams"],
)
def test_inputs_over_the_limits_are_input_too_large(clip: Path, limits: media.Limits):
    assert failure_of(clip, limits) == ErrorCode.INPUT_TOO_LARGE


def test_a_codec_off_the_allowlist_is_unsupported(tmp_path: Path):
    gif_in_mkv = tmp_path / "frames.mkv"
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:duration=0.2",
            "-c:v",
            "gif",
            str(gif_in_mkv),
        ],
        check=True,
    )
    assert failure_of(gif_in_mkv) == ErrorCode.UNSUPPORTED_FORMAT


def test_one_run_reports_increasing_progress(tmp_path: Path, clip: Path):
    fractions: list[float] = []
    media.run_ffmpeg(
        clip,
        "mov",
        ["-map", "0:0", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4", str(tmp_path / "out.mp4")],
        duration_seconds=2,
        on_progress=fractions.append,
        timeout_seconds=60,
    )
    assert fractions and fractions == sorted(fractions) and fractions[-1] > 0.9


def test_ffmpeg_is_killed_on_a_stop_request_past_its_time_limit_and_when_progress_raises(tmp_path: Path):
    slow = make_clip(tmp_path / "slow.mp4", seconds=4)
    arguments = ["-map", "0:0", "-f", "null", "-"]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(media.EncodeStopped):
        media.run_ffmpeg(
            slow,
            "mov",
            arguments,
            duration_seconds=4,
            on_progress=lambda _: None,
            timeout_seconds=60,
            stop=stop,
            input_options=["-readrate", "1"],
        )
    with pytest.raises(media.EncodeTimeout):
        media.run_ffmpeg(
            slow,
            "mov",
            arguments,
            duration_seconds=4,
            on_progress=lambda _: None,
            timeout_seconds=0.3,
            input_options=["-readrate", "1"],
        )

    class Stop(Exception):
        pass

    def stop_now(_: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        media.run_ffmpeg(
            slow,
            "mov",
            arguments,
            duration_seconds=4,
            on_progress=stop_now,
            timeout_seconds=60,
            input_options=["-readrate", "1"],
        )


def test_a_stream_off_the_allowlist_is_ignored_and_its_decoder_never_opened(tmp_path: Path):
    # The png decoder, had it opened the corrupted header, would log "Picture size 0x32 is invalid".
    probed = media.probe(make_h264_with_png(tmp_path / "both.mkv", corrupt_png=True))
    assert (probed.video_index, probed.metadata.video_codec) == (0, "h264")
    assert probed.metadata.ignored_streams == [IgnoredStream(index=1, codec="png")]


def test_an_input_whose_only_video_stream_is_off_the_allowlist_is_unsupported(tmp_path: Path):
    assert failure_of(make_png_only(tmp_path / "png.mkv")) == ErrorCode.UNSUPPORTED_FORMAT


def test_a_streamed_mkv_without_a_duration_is_measured(tmp_path: Path):
    streamed = make_streamed_mkv(tmp_path / "streamed.mkv", seconds=3)
    assert media.probe(streamed).metadata.duration_seconds == pytest.approx(3, abs=0.2)
    assert failure_of(streamed, media.Limits(max_duration_seconds=2)) == ErrorCode.INPUT_TOO_LARGE


def test_children_run_without_aws_credentials_and_with_resource_limits(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.setenv(name, "secret-value")
    script = (
        "import json, os, resource; print(json.dumps({'env': dict(os.environ), 'limits': "
        "[resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE)]}))"
    )
    limits = media.ChildLimits(address_space_bytes=3 * 1024**3, cpu_seconds=77, open_files=55)
    seen = json.loads(media.run_confined([sys.executable, "-c", script], limits, timeout_seconds=60).stdout)
    assert not [name for name in seen["env"] if name.startswith("AWS_") or "secret-value" in seen["env"][name]]
    assert seen["limits"] == [3 * 1024**3, 77, 55]


def test_a_child_past_its_cpu_time_or_address_space_is_stopped():
    limits = media.ChildLimits(address_space_bytes=1024**3, cpu_seconds=1, open_files=64)
    spinning = media.run_confined([sys.executable, "-c", "while True: pass"], limits, timeout_seconds=60)
    assert spinning.returncode < 0  # SIGXCPU, then SIGKILL at the hard limit
    greedy = media.run_confined([sys.executable, "-c", "bytearray(2 * 1024**3)"], limits, timeout_seconds=60)
    assert greedy.returncode != 0 and "MemoryError" in greedy.stderr


def test_every_allowed_codec_has_its_decoders_in_both_ffmpeg_and_pyav():
    import av

    listing = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-decoders"], capture_output=True, text=True)
    rows = [line.split() for line in listing.stdout.split(" ------\n", 1)[1].splitlines()]
    ffmpeg_decoders = {row[1] for row in rows if len(row) > 1}
    for codec, decoders in (media.VIDEO_DECODERS | media.AUDIO_DECODERS).items():
        assert decoders[0] in ffmpeg_decoders, codec  # the first is the native one, in every build
        assert av.Codec(decoders[0], "r").canonical_name == codec
