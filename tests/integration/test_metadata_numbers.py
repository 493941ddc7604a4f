"""Numbers in a job's ``metadata`` are refused (422) exactly where DynamoDB could not store them (38 significant
digits, magnitudes 1e-130 to 1e126): before, such a number passed validation and the write failed (500)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.local.resources import Resources
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.models import CreateJobRequest, Job, StoredOutput, utcnow

STORABLE = [10**38 - 1, -(10**38 - 1), 1.5e125, 1e-130, -2.5e-100, 0.1, 1 / 3, 12345678901234567890, 0, -0.0]
UNSTORABLE = [10**38 + 1, 123456789012345678901234567890123456789, 1e126, 1.7e308, 1e-131, 5e-324]


def request(number: object) -> CreateJobRequest:
    return CreateJobRequest.model_validate(
        {
            "input": {"upload_id": "upl_" + "a" * 32},
            "outputs": [{"type": "mp4", "height": 360}],
            "metadata": {"deep": [{"n": number}]},
        }
    )


@pytest.mark.parametrize("number", UNSTORABLE)
def test_a_number_dynamodb_cannot_store_is_a_validation_error(number: object) -> None:
    with pytest.raises(ValidationError, match="38 significant digits"):
        request(number)


def test_every_number_the_model_accepts_is_stored_and_read_back(aws: Resources) -> None:
    store = JobStore(client("dynamodb"), aws.tables["jobs"])
    now = utcnow()
    for index, number in enumerate(STORABLE):
        metadata = request(number).metadata
        job = Job(
            id=f"job_{index}",
            tenant_id="t1",
            created_at=now,
            updated_at=now,
            upload_id="upl_x",
            input_key="uploads/t1/upl_x",
            outputs=[StoredOutput(spec={"type": "mp4", "height": 360})],
            metadata=metadata,
        )
        store.create(job)  # boto3's serializer applies DynamoDB's number rules before anything is sent
        assert store.get(job.id).metadata == {"deep": [{"n": pytest.approx(number)}]}
