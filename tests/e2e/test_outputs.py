"""Every output type over real HTTP on the local stack: an HLS ladder a player follows down to every segment,
thumbnails, audio; hostile inputs fail with their code and leave no output behind."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import av
import httpx
import pytest

from tests.crafted import concat_playlist, hls_playlist, make_canary, make_huge_header
from tests.e2e.conftest import RunningStack, submit, upload, wait_for
from tests.media import make_clip

pytestmark = pytest.mark.e2e

SECONDS, FPS = 4, 25


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("outputs") / "source.mp4", seconds=SECONDS, width=640, height=360)


def stream_info(master: str) -> list[tuple[dict[str, str], str]]:
    """Each variant of a master playlist: its attributes and its URI."""
    lines = master.splitlines()
    return [
        (dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])), lines[index + 1])
        for index, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]


def test_an_hls_ladder_plays_from_its_master_playlist_down_to_every_segment(
    api: httpx.Client, source: Path, tmp_path: Path
):
    response = submit(api, upload(api, source), [{"type": "hls", "heights": [1080, 360, 240]}])
    done = wait_for(api, response.json()["id"])
    assert done["status"] == "completed", done
    [hls] = done["outputs"]
    assert [(r["width"], r["height"]) for r in hls["renditions"]] == [(640, 360), (426, 240)]  # 1080: no upscale

    # As a player: no Authorization header, every URI resolved against the URL it came from.
    master = httpx.get(hls["url"])
    assert master.status_code == 200 and master.headers["content-type"] == "application/vnd.apple.mpegurl"
    variants = stream_info(master.text)
    assert len(variants) == 2
    for (attributes, uri), rendition in zip(variants, hls["renditions"], strict=True):
        assert attributes["RESOLUTION"] == f"{rendition['width']}x{rendition['height']}"
        assert int(attributes["BANDWIDTH"]) > 0 and attributes["CODECS"].startswith('"avc1.')
        variant_url = urljoin(hls["url"], uri)
        variant = httpx.get(variant_url)
        assert variant.status_code == 200 and "#EXT-X-ENDLIST" in variant.text
        segments = [urljoin(variant_url, line) for line in variant.text.splitlines() if line and line[0] != "#"]
        joined = tmp_path / f"{rendition['height']}.ts"
        joined.write_bytes(b"".join(httpx.get(segment).raise_for_status().content for segment in segments))
        with av.open(str(joined)) as played:
            assert played.streams.video[0].codec_context.height == rendition["height"]
            assert sum(1 for _ in played.decode(video=0)) == pytest.approx(SECONDS * FPS, abs=2)
            assert played.streams.audio[0].codec_context.name == "aac"

    token = hls["url"].split("/")[-2]
    forged = hls["url"].replace(token, token.rsplit(".", 1)[0] + "." + "A" * 43)  # another signature
    refused = httpx.get(forged)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_thumbnails_of_the_right_size_and_mp3_and_aac_audio(api: httpx.Client, source: Path, tmp_path: Path):
    outputs = [
        {"type": "thumbnails", "count": 5, "width": 200},
        {"type": "thumbnails", "at_seconds": [3, 1]},
        {"type": "audio", "format": "mp3"},
        {"type": "audio", "format": "aac"},
    ]
    done = wait_for(api, submit(api, upload(api, source), outputs).json()["id"])
    assert done["status"] == "completed", done
    counted, timed, mp3, aac = done["outputs"]

    assert len(counted["urls"]) == 5 and counted["resolution"] == {"width": 200, "height": 112}
    for index, url in enumerate(counted["urls"] + timed["urls"]):
        picture = tmp_path / f"{index}.jpg"
        picture.write_bytes(httpx.get(url).raise_for_status().content)
        with av.open(str(picture)) as image:
            size = (image.streams.video[0].codec_context.width, image.streams.video[0].codec_context.height)
        assert size == ((200, 112) if index < 5 else (640, 360))
    assert timed["times_seconds"] == [3.0, 1.0]

    for output, codec, content_type in ((mp3, "mp3", "audio/mpeg"), (aac, "aac", "audio/mp4")):
        assert output["content_type"] == content_type
        audio = tmp_path / f"audio.{codec}"
        audio.write_bytes(httpx.get(output["url"]).raise_for_status().content)
        with av.open(str(audio)) as heard:
            assert not heard.streams.video
            assert heard.streams.audio[0].codec_context.codec.canonical_name == codec
            assert heard.duration / 1e6 == pytest.approx(SECONDS, abs=0.2)


def test_hostile_inputs_fail_with_their_code_and_the_canary_never_reaches_an_output(
    stack: RunningStack, api: httpx.Client, tmp_path: Path
):
    # The canary is a clip a worker would happily transcode: a job that followed a playlist to it would succeed.
    canary = make_canary(tmp_path / "canary.ts")
    text, hls, concat = tmp_path / "notes.mp4", tmp_path / "playlist.mp4", tmp_path / "list.mp4"
    text.write_text("just some text\n" * 100)
    hls.write_text(hls_playlist(canary))
    concat.write_text(concat_playlist(canary))
    cases = {
        text: "invalid_media",
        hls: "unsupported_format",
        concat: "unsupported_format",
        make_huge_header(tmp_path / "huge.avi"): "input_too_large",
    }
    jobs = {
        path: submit(
            api, upload(api, path), [{"type": "mp4", "height": 144}, {"type": "hls", "heights": [144]}]
        ).json()["id"]
        for path in cases
    }
    outputs = stack.aws("s3")
    bucket = stack.env["OUTPUTS_BUCKET"]
    for path, code in cases.items():
        done = wait_for(api, jobs[path])
        assert (done["status"], done["error"]["code"]) == ("failed", code), path.name
        assert all(output["url"] is None for output in done["outputs"])
        listed = outputs.list_objects_v2(Bucket=bucket, Prefix=f"outputs/dev/{jobs[path]}/")
        assert listed.get("KeyCount", 0) == 0, path.name
