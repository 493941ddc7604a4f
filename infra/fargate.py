"""The long-jobs workers: an ECS Fargate service per ``wiring.SERVICES`` entry, consuming its queue.

The tasks run the Lambda worker's image (the same asset, so one build and one push) with the consumer as entry
point (``python3 -m functions.process.consumer``). The service scales on the queue's backlog, visible plus in
flight, so a task busy with a job counts and is not scaled away under it; the consumer also takes ECS task
scale-in protection while it works. Tasks run in public subnets with a public IP and no inbound rule: they only
call AWS APIs, and a NAT gateway would cost more than the rest of the stack at rest. S3 and DynamoDB traffic
stays on the VPC's gateway endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, Fn, IgnoreMode
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs

from infra import nag
from videojobs import wiring
from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME
from videojobs.observability import TRACER_ENVIRONMENT

if TYPE_CHECKING:
    from infra.construct import VideoJobs

PROCESS, OUTPUTS = "process", "outputs"
STOP_TIMEOUT = Duration.seconds(120)  # Fargate's maximum: time for a consumer to hand its job back on SIGTERM
SCALING_PERIOD = Duration.minutes(1)


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
    environment = {"POWERTOOLS_SERVICE_NAME": SERVICE_NAME, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE}
    environment |= TRACER_ENVIRONMENT
    environment |= service.locations(decl.uses)
    task.add_container(
        "worker",
        image=image,
        entry_point=["python3", "-m", decl.module],  # the image's own entry point is Lambda's runtime client
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
    max_tasks = props.fargate_max_tasks or decl.max_tasks
    # One task per job waiting or running, up to the maximum; none when the queue is empty.
    steps = [autoscaling.ScalingInterval(upper=1, change=0)]
    steps += [autoscaling.ScalingInterval(lower=n, upper=n + 1, change=n) for n in range(1, max_tasks)]
    steps += [autoscaling.ScalingInterval(lower=max_tasks, change=max_tasks)]
    fargate.auto_scale_task_count(min_capacity=0, max_capacity=max_tasks).scale_on_metric(
        "Backlog",
        metric=backlog,
        scaling_steps=steps,
        adjustment_type=autoscaling.AdjustmentType.EXACT_CAPACITY,
        cooldown=SCALING_PERIOD,
    )
    return fargate
