"""Signed playback tokens and the rewriting of variant playlists."""

import pytest

from videojobs import playback

JOB = "job_" + "a" * 32


def test_a_token_verifies_until_it_expires_and_only_with_its_secret():
    token = playback.sign("secret", JOB, 3, 2_000)
    parsed = playback.parse(token)
    assert parsed is not None and (parsed.job_id, parsed.output_index, parsed.expires_at) == (JOB, 3, 2_000)
    assert playback.is_valid(parsed, "secret", now=1_999)
    assert not playback.is_valid(parsed, "secret", now=2_000)
    assert not playback.is_valid(parsed, "other secret", now=1_000)
    for changed in (token.replace(".3.", ".4."), token.replace(".2000.", ".9000."), f"{token[:-1]}x"):
        found = playback.parse(changed)
        assert found is None or not playback.is_valid(found, "secret", now=1_000)


@pytest.mark.parametrize("text", ["", "job_1.0.5.sig", f"{JOB}.0.5", f"../{JOB}.0.5.{'a' * 43}"])
def test_what_is_not_a_token_does_not_parse(text: str):
    assert playback.parse(text) is None


def test_a_variant_playlist_gets_an_absolute_url_per_segment_and_uri_attribute():
    text = (
        '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6.0,\n360p_00000.ts\n\n#EXTINF:2.5,\n360p_00001.ts\n'
        "#EXT-X-ENDLIST\n"
    )
    rewritten = playback.rewrite_media_playlist(text, lambda name: f"https://s3/{name}?sig=1")
    assert rewritten.splitlines() == [
        "#EXTM3U",
        '#EXT-X-MAP:URI="https://s3/init.mp4?sig=1"',
        "#EXTINF:6.0,",
        "https://s3/360p_00000.ts?sig=1",
        "",
        "#EXTINF:2.5,",
        "https://s3/360p_00001.ts?sig=1",
        "#EXT-X-ENDLIST",
    ]


@pytest.mark.parametrize("uri", ["../other/secret.ts", "/etc/passwd", "https://elsewhere/x.ts"])
def test_a_playlist_naming_anything_but_a_file_beside_it_is_refused(uri: str):
    with pytest.raises(ValueError, match="unexpected URI"):
        playback.rewrite_media_playlist(f"#EXTM3U\n{uri}\n", lambda name: name)
