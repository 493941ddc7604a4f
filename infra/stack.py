"""The deployable stack: the ``VideoJobs`` construct and the outputs a client or operator needs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.construct import VideoJobs, VideoJobsProps
from infra.cost_tags import add_cost_tags


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


class VideoJobsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, props: VideoJobsProps | None = None, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.service = VideoJobs(self, "VideoJobs", props=props)
        # Stack tags: CloudFormation puts them on every resource it deploys, also on what CDK adds beside the
        # construct as raw resources (the provider that empties buckets), which Tags.of cannot reach.
        add_cost_tags(self, self.service.props.project_tag, skip=self.service)

        CfnOutput(self, "ApiUrl", value=self.service.api.url, description="Base URL of the API (stage v1)")
        # What `videojobs admin` needs to give tenants their request rates (REST_API_ID, USAGE_PLAN_ID).
        CfnOutput(self, "RestApiId", value=self.service.api.rest_api_id)
        CfnOutput(self, "TenantUsagePlanId", value=self.service.tenant_usage_plan.usage_plan_id)
        if self.service.domain is not None:
            CfnOutput(
                self,
                "CustomDomainTarget",
                value=self.service.domain.domain_name_alias_domain_name,
                description="Point the custom domain's DNS (CNAME or alias) here",
            )
        monitoring = self.service.monitoring
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn, description="Alarms notify this topic")
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards:name={monitoring.dashboard.dashboard_name}",
        )
        for name, table in self.service.tables.items():
            CfnOutput(self, f"{_pascal(name)}TableName", value=table.table_name)
        for name, bucket in self.service.buckets.items():
            CfnOutput(self, f"{_pascal(name)}BucketName", value=bucket.bucket_name)
        for name, queue in self.service.queues.items():
            CfnOutput(self, f"{_pascal(name)}QueueName", value=queue.queue_name)
        for name, queue in self.service.dead_letter_queues.items():
            CfnOutput(self, f"{_pascal(name)}DeadLetterQueueName", value=queue.queue_name)
