"""The event bus in the template: the construct's own bus (or the one given as a prop), PutEvents granted on that
bus only and only to the functions that put events, and the README's rule example routing to a topic."""

from __future__ import annotations

import json
from typing import Any

from infra.construct import VideoJobs
from tests.infra.conftest import Synth, Twice
from videojobs import settings, wiring


def _put_events_grants(synth: Synth, service: VideoJobs) -> dict[str, list[Any]]:
    """Function name -> the resources its role may ``events:PutEvents`` on."""
    grants: dict[str, list[Any]] = {}
    for name, fn in service.functions.items():
        role = synth.logical_id(fn.role)  # type: ignore[arg-type]
        for policy in synth.of_type("AWS::IAM::Policy").values():
            if {"Ref": role} not in policy["Properties"]["Roles"]:
                continue
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if statement["Effect"] == "Allow" and any(action.startswith("events:") for action in actions):
                    assert actions == ["events:PutEvents"] or actions == "events:PutEvents", actions
                    grants.setdefault(name, []).append(statement["Resource"])
    return grants


def test_the_construct_creates_a_bus_and_grants_put_events_on_it_alone(synth: Synth, service: VideoJobs) -> None:
    (bus_id,) = synth.of_type("AWS::Events::EventBus")
    assert synth.logical_id(service.event_bus) == bus_id
    users = {name for name, fn in wiring.FUNCTIONS.items() if wiring.EVENT_BUS in fn.uses}
    assert users == {"notify", "deliver"}
    bus_arn = {"Fn::GetAtt": [bus_id, "Arn"]}
    assert _put_events_grants(synth, service) == {name: [bus_arn] for name in users}
    for name in users:
        variables = synth.resource(service.functions[name])["Properties"]["Environment"]["Variables"]
        assert variables[settings.EVENT_BUS_NAME] == {"Ref": bus_id}


def test_a_bus_given_as_a_prop_is_used_instead_and_the_retention_props_reach_the_functions(twice: Twice) -> None:
    ops_bus = twice.logical_id(twice.ops_bus)
    assert set(twice.custom_stack.of_type("AWS::Events::EventBus")) == {ops_bus}  # Custom made none of its own
    assert set(twice.defaults_stack.of_type("AWS::Events::EventBus")) == {twice.logical_id(twice.defaults.event_bus)}
    assert _put_events_grants(twice.custom_stack, twice.custom) == {
        name: [{"Fn::GetAtt": [ops_bus, "Arn"]}] for name in ("notify", "deliver")
    }
    notify = twice.resource(twice.custom.functions["notify"])["Properties"]["Environment"]["Variables"]
    assert notify[settings.EVENT_BUS_NAME] == {"Ref": ops_bus}
    assert notify[settings.EVENT_RETENTION_DAYS] == "14"
    deliver = twice.resource(twice.custom.functions["deliver"])["Properties"]["Environment"]["Variables"]
    assert deliver[settings.ENDPOINT_DISABLE_AFTER_SECONDS] == str(2 * 24 * 3600)
    api = twice.resource(twice.custom.functions["notifications"])["Properties"]["Environment"]["Variables"]
    assert api[settings.EVENT_RETENTION_DAYS] == "14"


def test_the_readme_rule_example_sends_one_tenants_failed_jobs_to_a_topic(twice: Twice) -> None:
    # The app's one rule, in the stack of the bus and the topic it names.
    (rule,) = twice.custom_stack.of_type("AWS::Events::Rule").values()
    assert not twice.defaults_stack.of_type("AWS::Events::Rule")
    props = rule["Properties"]
    assert props["EventBusName"] == {"Ref": twice.logical_id(twice.ops_bus)}
    assert props["EventPattern"] == {
        "source": ["videojobs"],
        "detail-type": ["job.failed"],
        "detail": {"tenant_id": ["acme"]},
    }
    [target] = props["Targets"]
    assert target["Arn"] == {"Ref": twice.logical_id(twice.ops_topic)}
    # The topic lets EventBridge publish to it.
    policies = [json.dumps(res["Properties"]) for res in twice.custom_stack.of_type("AWS::SNS::TopicPolicy").values()]
    assert any("events.amazonaws.com" in policy for policy in policies)
