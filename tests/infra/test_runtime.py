"""Tested Python vs deployed Python: the gap is one declaration (``DEPLOYED_PYTHON``) and kept small.

The suite runs on the machine's CPython (3.11); the functions deploy on ``DEPLOYED_PYTHON``. These tests hold
every place that names the deployed version to that one constant, check that each locked dependency set was
resolved for it, and, where that interpreter is installed, compile every source file with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.construct import DEPLOYED_PYTHON, IMAGE_DOCKERFILE, LAYER_LOCK, ROOT, ZIP_RUNTIME

WORKER_LOCK = "requirements-worker.lock"
SOURCES = ("videojobs", "functions")


def test_zip_runtime_is_the_deployed_python() -> None:
    assert ZIP_RUNTIME.name == f"python{DEPLOYED_PYTHON}"


def test_worker_image_is_built_on_the_deployed_python() -> None:
    (base,) = re.findall(r"^FROM (\S+)", (ROOT / IMAGE_DOCKERFILE).read_text(), flags=re.MULTILINE)
    assert base == f"public.ecr.aws/lambda/python:{DEPLOYED_PYTHON}"


@pytest.mark.parametrize("lock", [LAYER_LOCK, WORKER_LOCK])
def test_every_deployed_lock_was_resolved_for_the_deployed_python(lock: str) -> None:
    header = (ROOT / lock).read_text().splitlines()[1]
    assert f"--python-version {DEPLOYED_PYTHON} " in header, header
    makefile = (ROOT / "Makefile").read_text()
    assert f"-o {lock}" in makefile and f"--python-version {DEPLOYED_PYTHON} " in makefile


def test_the_tested_python_is_at_most_one_minor_version_behind() -> None:
    deployed = tuple(int(part) for part in DEPLOYED_PYTHON.split("."))
    assert deployed[0] == sys.version_info.major
    assert 0 <= deployed[1] - sys.version_info.minor <= 1


def _deployed_interpreter() -> str | None:
    """An installed interpreter of the deployed version (on PATH, or one of pyenv's), if this machine has one."""
    name = f"python{DEPLOYED_PYTHON}"
    candidates = [
        shutil.which(name),
        *map(str, sorted(Path.home().glob(f".pyenv/versions/{DEPLOYED_PYTHON}.*/bin/{name}"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.startswith(f"Python {DEPLOYED_PYTHON}."):
            return candidate
    return None


DEPLOYED_INTERPRETER = _deployed_interpreter()


@pytest.mark.skipif(DEPLOYED_INTERPRETER is None, reason="the deployed Python is not installed on this machine")
def test_every_source_file_compiles_on_the_deployed_python() -> None:
    interpreter = DEPLOYED_INTERPRETER
    assert interpreter is not None
    files = [str(path) for source in SOURCES for path in sorted((ROOT / source).rglob("*.py"))]
    # compile() writes nothing; -W error makes a syntax or escape warning of the deployed version fail here.
    script = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f, encoding='utf-8').read(), f, 'exec')"
    result = subprocess.run(
        [interpreter, "-W", "error", "-c", script, *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
