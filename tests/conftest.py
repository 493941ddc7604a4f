from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import make_clip


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264/AAC clip, made once per test session."""
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4")
