"""Output types as validated parameters (never ffmpeg arguments), and Retry-After following the ETA."""

import pytest
from pydantic import ValidationError

from videojobs.job_view import retry_after_seconds
from videojobs.models import CreateJobRequest, Job, JobStatus, StoredOutput, utcnow

UPLOAD = {"upload_id": "upl_" + "0" * 32}


def request(*outputs: dict) -> CreateJobRequest:
    return CreateJobRequest.model_validate({"input": UPLOAD, "outputs": list(outputs)})


def test_each_output_type_parses_with_its_defaults():
    parsed = request(
        {"type": "mp4", "height": 720},
        {"type": "hls", "heights": [1080, 720, 360]},
        {"type": "thumbnails", "count": 5, "width": 320},
        {"type": "thumbnails", "at_seconds": [0, 1.5]},
        {"type": "audio", "format": "aac"},
    )
    assert [o.model_dump(mode="json", exclude_none=True) for o in parsed.outputs] == [
        {"type": "mp4", "height": 720, "quality": "medium"},
        {"type": "hls", "heights": [1080, 720, 360]},
        {"type": "thumbnails", "count": 5, "width": 320},
        {"type": "thumbnails", "at_seconds": [0.0, 1.5]},
        {"type": "audio", "format": "aac"},
    ]


@pytest.mark.parametrize(
    "output",
    [
        {"type": "mp4", "height": 361},  # odd: 4:2:0 H.264 needs even sizes
        {"type": "mp4", "height": 360, "quality": "best"},
        {"type": "mp4", "height": 360, "args": "-vf x"},  # no raw ffmpeg arguments, ever
        {"type": "hls", "heights": []},
        {"type": "hls", "heights": [360, 360]},
        {"type": "hls", "heights": [360] * 9},
        {"type": "thumbnails"},
        {"type": "thumbnails", "count": 3, "at_seconds": [1]},
        {"type": "thumbnails", "count": 0},
        {"type": "thumbnails", "count": 101},
        {"type": "thumbnails", "at_seconds": [-1]},
        {"type": "thumbnails", "count": 2, "width": 8},
        {"type": "audio", "format": "flac"},
        {"type": "audio"},
    ],
)
def test_invalid_outputs_are_refused(output: dict):
    with pytest.raises(ValidationError):
        request(output)


def job(status: JobStatus, **fields) -> Job:
    now = utcnow()
    return Job(
        id="job_1",
        tenant_id="t",
        status=status,
        created_at=now,
        updated_at=now,
        upload_id="u",
        input_key="k",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 144})],
        **fields,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 2),  # probing: no ETA yet
        ({"eta_seconds": 7}, 7),
        ({"eta_seconds": 0}, 1),
        ({"eta_seconds": 5000}, 30),
        ({"eta_seconds": 5000, "cancel_requested_at": utcnow()}, 1),
    ],
)
def test_retry_after_follows_the_eta_within_bounds(fields: dict, expected: int):
    assert retry_after_seconds(job(JobStatus.PROCESSING, **fields)) == expected


def test_retry_after_is_five_seconds_while_queued_and_absent_once_finished():
    assert retry_after_seconds(job(JobStatus.QUEUED)) == 5
    assert [
        retry_after_seconds(job(status)) for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    ] == [None, None, None]
