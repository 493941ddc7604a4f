"""The long-jobs workers: an ECS Fargate service per ``wiring.SERVICES`` entry, consuming its queue.

The tasks run the Lambda worker's image (the same asset, so one build and one push) with the consumer as entry
point (``python3 -m functions.process.consumer``). The service scales on the queue's backlog, visible plus in
flight, so a task busy with a job counts and is not scaled away under it; the consumer also takes ECS task
scale-in protection while it works. Tasks run in public subnets with a public IP and no inbound rule: they only
call AWS APIs, and a NAT gateway would cost more than the rest of the stack at rest. S3 and DynamoDB traffic
stays on the VPC's gateway endpoints.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, Fn, IgnoreMode, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from infra import nag
from infra.scaling import Scaling, backlog_scaling
from videojobs import wiring
from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME
from videojobs.observability import TRACER_ENVIRONMENT

if TYPE_CHECKING:
    from infra.construct import VideoJobs

PROCESS, OUTPUTS = "process", "outputs"
STOP_TIMEOUT = Duration.seconds(120)  # Fargate's maximum: time for a consumer to hand its job back on SIGTERM
SCALING_PERIOD = Duration.minutes(1)
ENTRY_POINT_PREFIX = ("env", "-u", "LAMBDA_TASK_ROOT")


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def add_fargate_workers(service: VideoJobs) -> dict[str, ecs.FargateService]:
    """Create the cluster (in a VPC of its own) and one Fargate service per declared container service.
    Returns the services by name. (The Lambda worker's time budget reaches it through ``settings_overrides``.)"""
    from infra.construct import IMAGE_DOCKERFILE, ROOT  # the construct module imports this one

    # A worker removes the partial outputs it wrote when its job is cancelled or taken from it.
    service.buckets[OUTPUTS].grant_delete(service.functions[PROCESS])
    if not wiring.SERVICES:
        return {}
    vpc = _network(service)
    cluster = ecs.Cluster(service, "WorkerCluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
    # The very asset of the Lambda worker's image: same folder, Dockerfile, platform and ignore rules.
    image = ecs.ContainerImage.from_asset(
        str(ROOT), file=IMAGE_DOCKERFILE, platform=ecr_assets.Platform.LINUX_AMD64, ignore_mode=IgnoreMode.DOCKER
    )
    return {name: _service(service, cluster, image, name, decl) for name, decl in wiring.SERVICES.items()}


def _network(service: VideoJobs) -> ec2.IVpc:
    """A VPC with one public subnet in each of two zones, and gateway endpoints for S3 and DynamoDB.

    Built from CloudFormation resources rather than ``ec2.Vpc``, which reads the stack's availability zones and so
    makes CDK acknowledge a template warning on the whole stack; ``Fn::GetAZs`` picks the zones at deploy time."""
    vpc = ec2.CfnVPC(service, "WorkerVpc", cidr_block="10.0.0.0/16", enable_dns_hostnames=True, enable_dns_support=True)
    nag.acknowledge(
        vpc,
        "VPC7",
        "The tasks accept no inbound traffic and only call AWS APIs (S3 and DynamoDB "
        "through gateway endpoints); CloudTrail records those calls, flow logs would add only cost",
    )
    gateway = ec2.CfnInternetGateway(service, "WorkerInternetGateway")
    attachment = ec2.CfnVPCGatewayAttachment(
        service, "WorkerGatewayAttachment", vpc_id=vpc.ref, internet_gateway_id=gateway.ref
    )
    routes = ec2.CfnRouteTable(service, "WorkerRoutes", vpc_id=vpc.ref)
    ec2.CfnRoute(
        service,
        "WorkerDefaultRoute",
        route_table_id=routes.ref,
        destination_cidr_block="0.0.0.0/0",
        gateway_id=gateway.ref,
    ).add_dependency(attachment)
    zones = [Fn.select(index, Fn.get_azs()) for index in range(2)]
    subnets = []
    for index, zone in enumerate(zones):
        subnet = ec2.CfnSubnet(
            service,
            f"WorkerSubnet{index + 1}",
            vpc_id=vpc.ref,
            availability_zone=zone,
            cidr_block=f"10.0.{index}.0/24",
            map_public_ip_on_launch=False,
        )
        ec2.CfnSubnetRouteTableAssociation(
            service, f"WorkerSubnet{index + 1}Routes", subnet_id=subnet.ref, route_table_id=routes.ref
        )
        subnets.append(subnet)
    for name in ("s3", "dynamodb"):
        ec2.CfnVPCEndpoint(
            service,
            f"Worker{name.title()}Endpoint",
            vpc_id=vpc.ref,
            vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{Aws.REGION}.{name}",
            route_table_ids=[routes.ref],
        )
    return ec2.Vpc.from_vpc_attributes(
        service,
        "WorkerVpcRef",
        vpc_id=vpc.ref,
        availability_zones=zones,
        public_subnet_ids=[subnet.ref for subnet in subnets],
        public_subnet_route_table_ids=[routes.ref] * 2,
    )


def _service(
    service: VideoJobs, cluster: ecs.Cluster, image: ecs.ContainerImage, name: str, decl: wiring.Service
) -> ecs.FargateService:
    props = service.props
    prefix = _pascal(name)
    task = ecs.FargateTaskDefinition(
        service,
        f"{prefix}Task",
        cpu=props.fargate_cpu or decl.cpu,
        memory_limit_mib=props.fargate_memory_mib or decl.memory_mb,
        ephemeral_storage_gib=decl.ephemeral_storage_gib,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,  # imageio-ffmpeg ships no aarch64 binary
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    log_group = logs.LogGroup(
        service, f"{prefix}Logs", retention=props.log_retention, removal_policy=props.removal_policy
    )
    environment = {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon beside the task
    }
    environment |= TRACER_ENVIRONMENT
    environment |= service.locations(decl.uses)
    task.add_container(
        "worker",
        image=image,
        # The image's own entry point is Lambda's runtime client. Its base sets LAMBDA_TASK_ROOT, from which
        # Powertools and the X-Ray SDK conclude they run in Lambda: the task is not.
        entry_point=[*ENTRY_POINT_PREFIX, "python3", "-m", decl.module],
        environment=environment,
        logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=log_group),
        stop_timeout=STOP_TIMEOUT,
    )
    nag.acknowledge(
        task,
        "ECS2",
        "The environment holds resource names and URLs (tables, buckets, the queue) "
        "and tuning values, no secret: the same variables the Lambda functions get",
    )
    service.grant(task.task_role, decl.uses)
    # Scale-in protection while a job runs: the consumer sets it through the ECS agent, with the task role.
    protection = iam.Policy(
        service,
        f"{prefix}TaskProtection",
        statements=[
            iam.PolicyStatement(
                actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                resources=[f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:task/{cluster.cluster_name}/*"],
            )
        ],
    )
    protection.attach_to_role(task.task_role)
    cfn_cluster = cluster.node.default_child
    assert isinstance(cfn_cluster, ecs.CfnCluster)  # an ecs.Cluster's own resource
    cluster_id = Stack.of(cluster).get_logical_id(cfn_cluster)
    nag.acknowledge(
        protection,
        f"IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<{cluster_id}>/*]",
        "A task learns its own ID only at run time: the grant covers the tasks of this cluster, and protection "
        "is all it allows",
    )
    service.buckets[OUTPUTS].grant_delete(task.task_role)

    fargate = ecs.FargateService(
        service,
        f"{prefix}Service",
        cluster=cluster,
        task_definition=task,
        assign_public_ip=True,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        min_healthy_percent=0,  # no job is lost by a stop: the message comes back and another task resumes it
        circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
    )
    queue = service.queues[decl.queue]
    backlog = cw.MathExpression(
        expression="visible + inflight",
        using_metrics={
            "visible": queue.metric_approximate_number_of_messages_visible(period=SCALING_PERIOD, statistic="Maximum"),
            "inflight": queue.metric_approximate_number_of_messages_not_visible(
                period=SCALING_PERIOD, statistic="Maximum"
            ),
        },
        period=SCALING_PERIOD,
        label=f"{name} backlog (visible + in flight)",
    )
    _scale_on_backlog(service, fargate, prefix, backlog, backlog_scaling(props.fargate_max_tasks or decl.max_tasks))
    return fargate


def _scale_on_backlog(
    service: VideoJobs, fargate: ecs.FargateService, prefix: str, backlog: cw.IMetric, scaling: Scaling
) -> None:
    """Each declared step policy as an alarm on the backlog and the step scaling action it invokes, exactly as
    declared (not ``scale_on_metric``, which splits its steps into alarms of its own)."""
    target = autoscaling.ScalableTarget(
        service,
        f"{prefix}TaskCount",
        service_namespace=autoscaling.ServiceNamespace.ECS,
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=f"service/{fargate.cluster.cluster_name}/{fargate.service_name}",
        min_capacity=scaling.min_capacity,
        max_capacity=scaling.max_capacity,
        # What ECS service scaling uses anyway; no role of our own to maintain.
        role=iam.Role.from_role_arn(
            service,
            f"{prefix}ScalingRole",
            f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/ecs.application-autoscaling."
            f"{Aws.URL_SUFFIX}/AWSServiceRoleForApplicationAutoScaling_ECSService",
        ),
    )
    for index, policy in enumerate(scaling.policies):
        action = autoscaling.StepScalingAction(
            service,
            f"{prefix}Scaling{index + 1}",
            scaling_target=target,
            adjustment_type=autoscaling.AdjustmentType.EXACT_CAPACITY,
            metric_aggregation_type=autoscaling.MetricAggregationType.MAXIMUM,
            cooldown=SCALING_PERIOD,
        )
        for step in policy.steps:
            action.add_adjustment(adjustment=step.capacity, lower_bound=step.lower, upper_bound=step.upper)
        alarm = cw.Alarm(
            service,
            f"{prefix}ScalingAlarm{index + 1}",
            metric=backlog,
            threshold=policy.threshold,
            comparison_operator=_comparison(policy.comparison),
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.IGNORE,
            alarm_description=f"Scales the {prefix} service on its backlog (infra/scaling.py)",
        )
        alarm.add_alarm_action(cw_actions.ApplicationScalingAction(action))


def _comparison(cloudformation_name: str) -> cw.ComparisonOperator:
    """``GreaterThanOrEqualToThreshold`` -> ``ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD``."""
    return cw.ComparisonOperator[re.sub(r"(?<!^)(?=[A-Z])", "_", cloudformation_name).upper()]
