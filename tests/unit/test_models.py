import pytest
from pydantic import ValidationError

from videojobs.models import (
    TRANSITIONS,
    CompleteUploadRequest,
    CreateJobRequest,
    CreateUploadRequest,
    JobEventType,
    JobStatus,
    status_event_type,
)
from videojobs.service.jobs import request_hash

UPLOAD_ID = "upl_" + "0" * 32


def job_request(**overrides):
    body = {"input": {"upload_id": UPLOAD_ID}, "outputs": [{"type": "mp4", "height": 360}], **overrides}
    return CreateJobRequest.model_validate(body)


def test_mp4_output_height_must_be_between_144_and_4320():
    for height in (144, 4320):
        job_request(outputs=[{"type": "mp4", "height": height}])
    for height in (143, 4321, 0, -1):
        with pytest.raises(ValidationError):
            job_request(outputs=[{"type": "mp4", "height": height}])


def test_unknown_output_type_and_unknown_fields_are_rejected():
    with pytest.raises(ValidationError):
        job_request(outputs=[{"type": "gif", "height": 360}])
    with pytest.raises(ValidationError):
        job_request(outputs=[{"type": "mp4", "height": 360, "ffmpeg_args": "-i /etc/passwd"}])
    with pytest.raises(ValidationError):
        job_request(surprise=True)


def test_metadata_is_limited_to_2_kb_of_json():
    job_request(metadata={"note": "x" * 1900})
    with pytest.raises(ValidationError, match="2048 bytes"):
        job_request(metadata={"note": "x" * 2100})


def test_upload_content_type_must_be_video_or_audio():
    for content_type in ("video/mp4", "audio/mpeg", "video/x-matroska"):
        CreateUploadRequest(filename="a", content_type=content_type, size_bytes=1)
    for content_type in ("text/plain", "application/octet-stream", "video/", "video/mp4; x=1"):
        with pytest.raises(ValidationError):
            CreateUploadRequest(filename="a", content_type=content_type, size_bytes=1)


def test_part_etags_are_visible_ascii_as_s3_sends_them():
    # Found by schemathesis: a control character made the CompleteMultipartUpload XML malformed (a 500), and a
    # lone surrogate cannot even be encoded for the request.
    for etag in ('"0123456789abcdef0123456789abcdef"', '"0123456789abcdef0123456789abcdef-2"', "x"):
        CompleteUploadRequest.model_validate({"parts": [{"part_number": 1, "etag": etag}]})
    for etag in ("abc\x13", "\u00f5\u00e7\U00100016H", "\ud800", "a b", "a\x00b"):
        with pytest.raises(ValidationError):
            CompleteUploadRequest.model_validate({"parts": [{"part_number": 1, "etag": etag}]})


def test_request_hash_ignores_key_order_but_not_content():
    first = CreateJobRequest.model_validate_json(
        f'{{"outputs": [{{"height": 360, "type": "mp4"}}], "input": {{"upload_id": "{UPLOAD_ID}"}}}}'
    )
    assert request_hash(first) == request_hash(job_request())
    assert request_hash(first) != request_hash(job_request(outputs=[{"type": "mp4", "height": 480}]))


def test_terminal_statuses_have_no_way_out():
    for status in JobStatus:
        assert (not TRANSITIONS[status]) == status.terminal


def test_every_status_has_its_event_and_progress_output_ready_and_playable_are_the_only_others():
    by_status = {status_event_type(status) for status in JobStatus}
    assert {event.name for event in by_status} == {status.name for status in JobStatus}
    assert set(JobEventType) - by_status == {JobEventType.PROGRESS, JobEventType.OUTPUT_READY, JobEventType.PLAYABLE}


def test_a_webhook_endpoint_may_subscribe_to_every_job_event():
    from videojobs.endpoints import EndpointEventType

    assert {kind.value for kind in JobEventType} <= {kind.value for kind in EndpointEventType}
