"""No secret reaches X-Ray: the tracer records no handler response or error, on every function and the task."""

from __future__ import annotations

import pytest

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from videojobs import wiring

NO_CAPTURE = {"POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false", "POWERTOOLS_TRACER_CAPTURE_ERROR": "false"}


@pytest.mark.parametrize("name", list(wiring.FUNCTIONS))
def test_every_function_traces_without_capturing_responses_or_errors(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    variables = synth.resource(service.functions[name])["Properties"]["Environment"]["Variables"]
    assert variables | NO_CAPTURE == variables


def test_the_long_jobs_task_traces_without_capturing_responses_or_errors(synth: Synth) -> None:
    (definition,) = synth.of_type("AWS::ECS::TaskDefinition").values()
    (container,) = definition["Properties"]["ContainerDefinitions"]
    variables = {variable["Name"]: variable["Value"] for variable in container["Environment"]}
    assert variables | NO_CAPTURE == variables
