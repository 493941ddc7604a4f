"""Cost-allocation tags: ``project`` on every resource of the construct and ``component`` on each by the concern
it serves, so Cost Explorer can split the bill (once both keys are activated as cost allocation tags in the
Billing console; tags count only from their activation on).

The component of a resource follows from the wiring (a function serving routes is ``api``; one consuming the
jobs queues is ``worker``...), so a new function or queue gets the right one without an edit here.
"""

from __future__ import annotations

from aws_cdk import Tags
from constructs import Construct

from videojobs import wiring

PROJECT_TAG, COMPONENT_TAG = "project", "component"
API, WORKER, STORAGE, NOTIFICATIONS, MONITORING = "api", "worker", "storage", "notifications", "monitoring"
COMPONENTS = (API, WORKER, STORAGE, NOTIFICATIONS, MONITORING)


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _worker_queues() -> set[str]:
    """The queues whose consumer runs jobs (the Lambda worker or a container service)."""
    return {
        name
        for name, queue in wiring.QUEUES.items()
        if queue.consumer == "process" or queue.consumer in wiring.SERVICES
    }


def function_component(name: str) -> str:
    if name == wiring.AUTHORIZER or any(route.function == name for route in wiring.ROUTES):
        return API
    worker_queues = _worker_queues()
    if any(
        queue_name in worker_queues and name in (queue.consumer, queue.dead_letter_consumer)
        for queue_name, queue in wiring.QUEUES.items()
    ):
        return WORKER
    return NOTIFICATIONS  # the stream's fan-out, webhook deliveries, the WebSocket API


def component_prefixes() -> list[tuple[str, str]]:
    """Construct id prefix -> component, longest prefixes first (``LongWorker`` before ``Worker``...)."""
    prefixes = {_pascal(name) + "Table": STORAGE for name in wiring.TABLES}
    prefixes |= {_pascal(name) + "Bucket": STORAGE for name in wiring.BUCKETS} | {"AccessLogsBucket": STORAGE}
    prefixes |= {_pascal(name): function_component(name) for name in wiring.FUNCTIONS}
    worker_queues = _worker_queues()
    prefixes |= {
        _pascal(name) + kind: WORKER if name in worker_queues else NOTIFICATIONS
        for name in wiring.QUEUES
        for kind in ("Queue", "DeadLetterQueue")
    }
    prefixes |= {_pascal(name): WORKER for name in wiring.SERVICES} | {"Worker": WORKER}
    prefixes |= {"WebSocket": NOTIFICATIONS, "StreamFailures": NOTIFICATIONS, "Monitoring": MONITORING}
    # CDK's stack-wide provider that empties buckets on delete (removal_policy DESTROY).
    prefixes |= {"Custom::S3AutoDeleteObjects": STORAGE}
    return sorted(prefixes.items(), key=lambda item: -len(item[0]))


def add_cost_tags(scope: Construct, project: str, *, skip: Construct | None = None) -> None:
    """``project`` everywhere in ``scope``; ``component`` by each child's concern (``api`` where no rule says
    otherwise: the REST API, its stage, domain and firewall, the authorizer and the shared layer). ``skip``: a
    child that tags its own (the construct, in a stack that also holds CDK's singleton providers)."""
    Tags.of(scope).add(PROJECT_TAG, project)
    prefixes = component_prefixes()
    for child in scope.node.children:
        if child is skip:
            continue
        component = next((value for prefix, value in prefixes if child.node.id.startswith(prefix)), API)
        Tags.of(child).add(COMPONENT_TAG, component)
