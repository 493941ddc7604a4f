"""The web page and the API docs in headless Chromium (Debian's, driven by Playwright; no browser download).

``make test`` installs ``chromium`` with apt-get when it is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.e2e.conftest import ROOT, RunningStack, running_stack
from tests.integration.test_chunking import make_source
from tests.media import make_clip, pad_media
from videojobs import settings
from videojobs.chunk_store import ChunkStatus, ChunkStore
from videojobs.job_store import JobStore
from videojobs.models import ChunkMessage
from videojobs.object_store import ObjectStore
from videojobs.queues import ReceivedMessage
from videojobs.service.chunking import ChunkAttempt, ChunkDeps, process_chunk
from videojobs.settings import ChunkWorkerSettings

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PATIENCE_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium), as root")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def offsite_requests(page: Page) -> list[str]:
    """Every request the page makes that leaves this machine (none should: no CDN, no telemetry). ``blob:`` and
    ``data:`` URLs are the page's own (hls.js feeds the video element through a blob URL)."""
    offsite: list[str] = []

    def check(url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in ("127.0.0.1", "localhost"):
            offsite.append(url)

    page.on("request", lambda request: check(request.url))
    return offsite


def test_a_clip_uploaded_through_the_page_is_processed_and_plays(stack: RunningStack, page: Page, tmp_path: Path):
    clip = make_clip(tmp_path / "page clip.mp4", seconds=3, width=320, height=240)
    offsite = offsite_requests(page)
    page.goto(stack.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#api-key", stack.api_key)
    page.set_input_files("#file", str(clip))
    page.check("input[name=mp4]")
    page.select_option("select[name=mp4-height]", "144")
    page.check("input[name=hls]")
    page.fill("input[name=hls-heights]", "144")
    page.click("#submit")

    # The upload bar fills to the file's size; the job bar follows the job to 100 %.
    page.wait_for_function(
        "document.querySelector('#upload-progress').value === document.querySelector('#upload-progress').max"
        " && document.querySelector('#upload-progress').max > 0",
        timeout=PATIENCE_MS,
    )
    page.wait_for_selector("#job-status[data-status=completed], #error:not([hidden])", timeout=PATIENCE_MS)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#upload-progress", "bar => bar.value") == clip.stat().st_size
    assert page.eval_on_selector("#job-progress", "bar => bar.value") == 100

    # Both results play: MP4 natively, HLS through hls.js; each video element's clock moves on.
    page.wait_for_function(
        "[...document.querySelectorAll('#players video')].every(v => v.currentTime > 0.3)"
        " && document.querySelectorAll('#players video').length === 2",
        timeout=30_000,
    )
    first = page.eval_on_selector_all("#players video", "videos => videos.map(v => v.currentTime)")
    page.wait_for_function(
        f"[...document.querySelectorAll('#players video')].every((v, i) => v.currentTime > {first}[i])", timeout=30_000
    )
    players = page.eval_on_selector_all(
        "#players video",
        "videos => videos.map(v => ({error: v.error, "
        "height: v.videoHeight, type: v.dataset.type, player: v.dataset.player}))",
    )
    assert players == [
        {"error": None, "height": 144, "type": "mp4", "player": "native"},
        {"error": None, "height": 144, "type": "hls", "player": "hls.js"},
    ]

    links = page.eval_on_selector_all("#downloads a", "links => links.map(link => link.href)")
    assert [urlsplit(link).path.rsplit("/", 1)[-1] for link in links] == ["0-mp4-144p.mp4", "master.m3u8"]
    assert offsite == []


def test_a_big_file_goes_up_from_the_page_in_parallel_parts(
    small_parts_stack: RunningStack, page: Page, tmp_path: Path
):
    big = pad_media(make_clip(tmp_path / "big.mp4", seconds=2), 20 * 1024**2)  # three parts of 8 MiB
    puts: list[str] = []
    page.on("request", lambda request: puts.append(request.url) if request.method == "PUT" else None)
    page.goto(small_parts_stack.url + "/")
    page.wait_for_selector("body[data-ready=true]")  # the stack's own key comes from /config.json
    page.set_input_files("#file", str(big))
    page.select_option("select[name=mp4-height]", "144")
    page.click("#submit")
    page.wait_for_selector("#job-status[data-status=completed], #error:not([hidden])", timeout=PATIENCE_MS)
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.eval_on_selector("#upload-progress", "bar => bar.value") == big.stat().st_size
    assert sorted(parse_qs(urlsplit(url).query)["partNumber"][0] for url in puts) == ["1", "2", "3"]


def test_the_docs_page_shows_every_documented_operation_without_a_cdn(stack: RunningStack, page: Page):
    offsite = offsite_requests(page)
    document = json.loads((ROOT / "openapi.json").read_text())
    operations = sum(len(methods) for methods in document["paths"].values())
    page.goto(stack.url + "/docs")
    page.wait_for_function(f"document.querySelectorAll('.opblock').length === {operations}", timeout=30_000)
    assert page.inner_text(".info .title").startswith(document["info"]["title"])
    assert offsite == []


def test_the_page_signs_a_part_again_when_storage_says_its_url_expired(
    small_parts_stack: RunningStack, page: Page, tmp_path: Path
):
    big = pad_media(make_clip(tmp_path / "big.mp4", seconds=2), 20 * 1024**2)  # three parts of 8 MiB
    refused: list[str] = []
    api_calls: list[str] = []

    def expire_part_two_until_signed_again(route: Route) -> None:
        if route.request.method == "PUT" and "parts" not in api_calls:
            refused.append(route.request.url)
            route.fulfill(
                status=403,
                headers={"Access-Control-Allow-Origin": "*", "Content-Type": "application/xml"},
                body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            )
        else:
            route.continue_()

    page.route(lambda url: "partNumber=2" in url, expire_part_two_until_signed_again)
    page.on("request", lambda request: api_calls.append(urlsplit(request.url).path.rsplit("/", 1)[-1]))
    page.goto(small_parts_stack.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#file", str(big))
    page.select_option("select[name=mp4-height]", "144")
    page.click("#submit")
    page.wait_for_selector("#job-status[data-status], #error:not([hidden])", timeout=PATIENCE_MS)

    assert page.is_hidden("#error"), page.inner_text("#error")
    assert len(refused) == 1
    assert api_calls.count("parts") == 1 and api_calls.count("complete") == 1
    assert page.eval_on_selector("#upload-progress", "bar => bar.value") == big.stat().st_size


@pytest.fixture(scope="module")
def held_chunks_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Small chunks (12 s, from 20 s on) and the chunks queue's event source mapping disabled: the test encodes
    each chunk itself (``HeldChunks``), so a job cannot complete before the test lets it."""
    lowered = {settings.CHUNK_SECONDS: "12", settings.CHUNKED_MIN_SECONDS: "20"}
    options = ["--disabled-event-source", "chunks"]
    with running_stack(tmp_path_factory.mktemp("held") / "stack.json", lowered, options) as running:
        yield running


class HeldChunks:
    """A chunk worker outside the stack, on its queue and tables: it receives a job's chunk messages and holds
    them (invisible to anyone else) until the test encodes each one."""

    def __init__(self, stack: RunningStack, scratch: Path):
        scratch.mkdir()
        values = ChunkWorkerSettings.from_env({**stack.env, settings.SCRATCH_DIR: str(scratch)})
        dynamodb = stack.aws("dynamodb")
        self._deps = ChunkDeps(
            values,
            JobStore(dynamodb, values.jobs_table),
            ChunkStore(dynamodb, values.chunks_table),
            ObjectStore(stack.aws("s3")),
            worker_id="test-worker",
        )
        self._sqs, self._queue_url = stack.aws("sqs"), stack.env[settings.CHUNKS_QUEUE_URL]
        self.held: dict[int, tuple[ChunkMessage, ReceivedMessage]] = {}

    def receive_all(self, job_id: str) -> int:
        """Receive every chunk message of ``job_id`` (the chunks table lists them before they are sent); returns
        how many chunks the job has."""
        deadline = time.monotonic() + PATIENCE_MS / 1000
        while not (count := len(self._deps.chunks.of_job(job_id))) or len(self.held) < count:
            assert time.monotonic() < deadline, f"chunk messages of {job_id}: {sorted(self.held)}"
            found = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=900
            )
            for message in found.get("Messages", []):
                chunk = ChunkMessage.model_validate_json(message["Body"])
                assert chunk.job_id == job_id
                received = ReceivedMessage(self._sqs, self._queue_url, message["ReceiptHandle"], time.monotonic())
                self.held[chunk.index] = (chunk, received)
        return count

    def encode(self, index: int) -> None:
        message, received = self.held.pop(index)
        outcome = process_chunk(message, self._deps, ChunkAttempt(deadline=time.monotonic() + 300, message=received))
        assert outcome.retry_in_seconds is None and outcome.chunk is not None, outcome
        assert outcome.chunk.status is ChunkStatus.DONE, outcome.chunk
        received.delete()


def test_the_page_plays_hls_on_job_playable_while_the_job_still_runs(
    held_chunks_stack: RunningStack, page: Page, tmp_path: Path
):
    stack = held_chunks_stack
    source = make_source(tmp_path / "source.mp4", seconds=24)
    chunks = HeldChunks(stack, tmp_path / "scratch")
    offsite = offsite_requests(page)
    page.goto(stack.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.set_input_files("#file", str(source))
    page.uncheck("input[name=mp4]")
    page.check("input[name=hls]")
    page.fill("input[name=hls-heights]", "144")
    page.click("#submit")
    page.wait_for_selector("#job-status[data-status=processing], #error:not([hidden])", timeout=PATIENCE_MS)
    assert page.is_hidden("#error"), page.inner_text("#error")
    job_id = page.inner_text("#job-status").split(":")[0]

    # Only the first chunk is encoded: the job can go no further than job.playable.
    assert chunks.receive_all(job_id) == 2
    chunks.encode(0)
    video = "document.querySelector('#players video[data-type=hls]')"
    page.wait_for_function(f"{video} && {video}.currentTime > 0", timeout=PATIENCE_MS)
    first = page.evaluate(f"{video}.currentTime")
    page.wait_for_function(f"{video}.currentTime > {first} && {video}.readyState >= 2", timeout=30_000)
    with stack.client() as api:
        job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "processing" and job["outputs"][0]["status"] == "pending", job
    assert page.get_attribute("#job-status", "data-status") == "processing"
    assert page.evaluate(f"({{error: {video}.error, player: {video}.dataset.player}})") == {
        "error": None,
        "player": "hls.js",
    }
    assert page.eval_on_selector_all("#downloads a", "links => links.length") == 0  # not ready yet: no download
    page.evaluate(f"window.earlyPlayer = {video}")

    # The rest: the job completes, and the same player reads on past the first chunk (12 s) into the final
    # VOD playlists, which replaced the EVENT ones under the same link.
    chunks.encode(1)
    page.wait_for_selector("#job-status[data-status=completed], #error:not([hidden])", timeout=PATIENCE_MS)
    assert page.is_hidden("#error"), page.inner_text("#error")
    page.wait_for_function(f"{video} === window.earlyPlayer && {video}.currentTime > 12.5", timeout=PATIENCE_MS)
    assert page.evaluate(f"{video}.error") is None
    links = page.eval_on_selector_all("#downloads a", "links => links.map(link => link.href)")
    assert [urlsplit(link).path.rsplit("/", 1)[-1] for link in links] == ["master.m3u8"]
    assert offsite == []
