"""Step scaling of the long-jobs workers, declared once and evaluated as Application Auto Scaling does.

``backlog_scaling`` is the policy: ``infra/fargate.py`` turns it into CloudWatch alarms and step scaling policies,
the local stack (``infra/local/services.py``) runs as many consumer tasks as ``Scaling.capacity`` gives, and
``tests/infra/test_fargate.py`` reads the synthesized template back with ``Scaling.from_template`` and checks it
equals this declaration and gives one task per job for every backlog. So a policy that leaves a job without a
task fails the template test and hangs that job locally too.

The rules evaluated here (Application Auto Scaling ``StepAdjustment``): a step's bounds are relative to its
alarm's threshold; above the threshold an interval is ``[lower, upper)``, below it ``(lower, upper]``. An alarm
with a scaling action invokes its policy every minute while it stays in ALARM, so an exact-capacity policy
follows the backlog down as well as up. Imports nothing from CDK: the local stack loads this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"
GREATER = "GreaterThanThreshold"
LESS = "LessThanThreshold"
LESS_OR_EQUAL = "LessThanOrEqualToThreshold"
EXACT_CAPACITY = "ExactCapacity"

# Between two integers: an integer backlog never sits on a step's bound or an alarm's threshold, where the
# inclusive side depends on the alarm's direction.
HALF = 0.5


@dataclass(frozen=True)
class Step:
    """Set the capacity to ``capacity`` when metric - threshold is between ``lower`` and ``upper`` (None: no
    bound on that side)."""

    lower: float | None
    upper: float | None
    capacity: int

    def contains(self, offset: float, *, above: bool) -> bool:
        if above:
            return (self.lower is None or offset >= self.lower) and (self.upper is None or offset < self.upper)
        return (self.lower is None or offset > self.lower) and (self.upper is None or offset <= self.upper)


@dataclass(frozen=True)
class StepPolicy:
    """One CloudWatch alarm on the backlog and the exact-capacity step policy it invokes."""

    threshold: float
    comparison: str
    steps: tuple[Step, ...]

    def in_alarm(self, value: float) -> bool:
        return {
            GREATER_OR_EQUAL: value >= self.threshold,
            GREATER: value > self.threshold,
            LESS: value < self.threshold,
            LESS_OR_EQUAL: value <= self.threshold,
        }[self.comparison]

    def capacity(self, value: float) -> int | None:
        """The capacity this policy sets for ``value`` when its alarm fires; None when no step matches (Application
        Auto Scaling then changes nothing)."""
        above = self.comparison in (GREATER_OR_EQUAL, GREATER)
        matching = [step.capacity for step in self.steps if step.contains(value - self.threshold, above=above)]
        return matching[0] if len(matching) == 1 else None


@dataclass(frozen=True)
class Scaling:
    min_capacity: int
    max_capacity: int
    policies: tuple[StepPolicy, ...]

    def firing(self, value: float) -> list[StepPolicy]:
        return [policy for policy in self.policies if policy.in_alarm(value)]

    def outcomes(self, value: float, current: int) -> set[int]:
        """Every capacity the service may have after one evaluation at ``value``, starting from ``current``: one
        per firing alarm (their order is not defined), or ``current`` when none fires or no step matches."""
        results = set()
        candidates: list[StepPolicy | None] = [*self.firing(value)] or [None]
        for policy in candidates:
            wanted = policy.capacity(value) if policy is not None else None
            results.add(current if wanted is None else max(self.min_capacity, min(wanted, self.max_capacity)))
        return results

    def capacity(self, value: float, current: int) -> int:
        """The capacity after one evaluation; where AWS could land on several, the smallest, so that a policy
        that may starve a job starves it locally too."""
        return min(self.outcomes(value, current))

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> Scaling:
        """The scaling of the one scalable target of a synthesized CloudFormation template: its step policies,
        each with the threshold and comparison of the alarm that invokes it."""
        resources = template["Resources"]
        (target,) = [res["Properties"] for res in resources.values() if res["Type"].endswith("::ScalableTarget")]
        policies = []
        for policy_id, res in resources.items():
            if res["Type"] != "AWS::ApplicationAutoScaling::ScalingPolicy":
                continue
            config = res["Properties"]["StepScalingPolicyConfiguration"]
            if config["AdjustmentType"] != EXACT_CAPACITY:
                raise ValueError(f"{policy_id}: only exact-capacity policies are evaluated")
            steps = tuple(
                Step(
                    lower=step.get("MetricIntervalLowerBound"),
                    upper=step.get("MetricIntervalUpperBound"),
                    capacity=step["ScalingAdjustment"],
                )
                for step in config["StepAdjustments"]
            )
            for alarm in resources.values():
                if alarm["Type"] == "AWS::CloudWatch::Alarm" and {"Ref": policy_id} in alarm["Properties"].get(
                    "AlarmActions", []
                ):
                    props = alarm["Properties"]
                    policies.append(StepPolicy(float(props["Threshold"]), props["ComparisonOperator"], steps))
        return cls(int(target["MinCapacity"]), int(target["MaxCapacity"]), tuple(policies))


def backlog_scaling(max_tasks: int) -> Scaling:
    """One task per job waiting or running (the backlog: visible plus in-flight messages), up to ``max_tasks``;
    none when the queue is empty. Two alarms that never fire together: scale out at a backlog of one or more,
    scale in at zero."""
    scale_out = [Step(n - 1, n, n) for n in range(1, max_tasks)] + [Step(max_tasks - 1, None, max_tasks)]
    return Scaling(
        min_capacity=0,
        max_capacity=max_tasks,
        policies=(
            StepPolicy(HALF, GREATER_OR_EQUAL, tuple(scale_out)),
            StepPolicy(HALF, LESS_OR_EQUAL, (Step(None, 0, 0),)),
        ),
    )
