"""``python -m infra.app``: synthesize the videojobs stack into ``cdk.out`` (or the CDK CLI's outdir).

No AWS call happens here, so synth works without credentials. The account and region come from the CDK CLI's
``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` when it sets them; otherwise the stack is environment-agnostic.
"""

from __future__ import annotations

import os

from aws_cdk import App, Environment, RemovalPolicy

from infra import nag
from infra.construct import ROOT, VideoJobsProps
from infra.stack import VideoJobsStack

STACK_NAME = "VideoJobs"

# A development deployment: deleting the stack deletes its data too.
DEV_PROPS = VideoJobsProps(removal_policy=RemovalPolicy.DESTROY)


def build(app: App) -> VideoJobsStack:
    """Add the project's stack to ``app`` (the tests synthesize exactly this)."""
    return VideoJobsStack(
        app,
        STACK_NAME,
        props=DEV_PROPS,
        env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
        description="videojobs: serverless API for long-running ffmpeg media jobs",
    )


def main() -> None:
    # Run directly (not by the CLI), an App would write to a temporary folder: default to ./cdk.out instead.
    app = App(outdir=os.environ.get("CDK_OUTDIR", str(ROOT / "cdk.out")))
    # Every synth (make synth, cdk deploy) fails on an unacknowledged cdk-nag finding.
    nag.enable_checks(app)
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
