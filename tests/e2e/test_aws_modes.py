"""The job flow on a local stack set up as AWS can be and the default one is not: behind a custom domain (the
base path stays in the event's ``path``), with a low account concurrency (invocations are throttled) and cold
starts. Every job must complete, none end ``failed`` without having run, and no function error is logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningStack, function_errors, running_stack
from tests.media import make_clip
from videojobs import wiring
from videojobs.sdk import Client

pytestmark = pytest.mark.e2e

ACCOUNT_CONCURRENCY = 2
"""Two environments for every unreserved function: a running job and one more, so most invocations wait."""


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    options = ["--custom-domain", "--account-concurrency", str(ACCOUNT_CONCURRENCY), "--cold-start", "0.5"]
    with running_stack(tmp_path_factory.mktemp("strict") / "stack.json", options=options) as running:
        yield running


def answer_retrying_throttles(api: httpx.Client, url: str, attempts: int = 20) -> httpx.Response:
    for _ in range(attempts):
        response = api.get(url)
        if response.status_code != 500:
            return response
        time.sleep(0.5)
    return response


def test_the_api_lives_under_the_base_path_and_links_keep_it(strict_stack: RunningStack) -> None:
    base = strict_stack.url
    assert base.endswith(f"/{wiring.API_BASE_PATH}")
    assert httpx.get(f"{base}/health", timeout=30).json() == {"status": "ok"}
    assert httpx.get(base.removesuffix(f"/{wiring.API_BASE_PATH}") + "/health", timeout=30).status_code == 404


def test_a_bad_key_is_401_unauthorized(strict_stack: RunningStack) -> None:
    # That it is no function error either is checked once the stack's output has caught up (the job flow's end).
    response = httpx.get(f"{strict_stack.url}/jobs", headers={"Authorization": "Bearer vj_not_a_key"}, timeout=30)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_jobs_complete_through_a_custom_domain_and_throttling(strict_stack: RunningStack, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2, width=320, height=240)
    # A client under throttling retries (API Gateway answers a throttled invocation with a 5xx).
    with Client(strict_stack.url, strict_stack.api_key, retries=10) as client:
        upload = client.upload(clip)
        submitted = [client.submit(upload, ["mp4:144"]) for _ in range(4)]
        with ThreadPoolExecutor(len(submitted)) as pool:
            finished = list(pool.map(lambda job: client.wait(job.id, timeout=300), submitted))

    for job in finished:
        assert job.status == "completed", job
        assert job.outputs and job.outputs[0].url
    # Links built by the API keep the base path (api.base_url): the job's own URL answers.
    with strict_stack.client() as api:
        response = api.post(
            "/jobs",
            json={"input": {"upload_id": upload.upload_id}, "outputs": [{"type": "mp4", "height": 144}]},
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        assert location.startswith(f"{strict_stack.url}/jobs/")
        # Retried like any client under throttling: a throttled invocation is API Gateway's 500, not the link's fault.
        assert answer_retrying_throttles(api, location).status_code == 200
    # No function error in the whole module: not the bad key's, not the throttled and retried invocations'.
    assert function_errors(strict_stack) == []
    # The mode did its part: some invocations were throttled on the way (and retried, not failed).
    assert any(" throttled" in line for line in list(strict_stack.output))
