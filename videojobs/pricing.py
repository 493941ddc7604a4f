"""What a job costs: a dated table of AWS list prices and the arithmetic over what a worker measured.

The estimate covers what a job itself makes AWS bill: the worker's compute (Lambda GB-seconds, its ``/tmp``
above 512 MB and one request per attempt; or Fargate vCPU-hours, GB-hours and ephemeral storage above 20 GB)
and its outputs in S3 (one PUT per file, and the storage until the outputs bucket's lifecycle expires them).
Left out, each well under $0.001 a job (README "What a job costs"): the API requests, SQS, DynamoDB, logs and
data transfer out (which depends on who downloads the outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

PRICES_CHECKED_ON = "2026-11-28"
"""When the prices below were last compared with the AWS pricing pages (public summaries of them, not the Price
List API). List prices: no free tier, no savings plan, no tiered discount."""
PRICE_SOURCES = (
    "https://aws.amazon.com/lambda/pricing/",
    "https://aws.amazon.com/fargate/pricing/",
    "https://aws.amazon.com/s3/pricing/",
)
GIB = 1024**3
LAMBDA_FREE_EPHEMERAL_GB = 0.5
FARGATE_FREE_EPHEMERAL_GB = 20.0
DAYS_PER_MONTH = 30.0
COST_DIGITS = 6
"""Estimates are rounded to a millionth of a dollar: what the usage ledger adds up exactly (DynamoDB decimals)."""

Route = Literal["lambda", "fargate"]


@dataclass(frozen=True)
class RegionPrices:
    """List prices in USD, on demand, for x86 (the worker's image is x86: imageio-ffmpeg ships no aarch64 ffmpeg)."""

    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1_000_000
    lambda_ephemeral_gb_second: float = 0.0000000309
    fargate_vcpu_hour: float = 0.04048
    fargate_gb_hour: float = 0.004445
    fargate_ephemeral_gb_hour: float = 0.000111
    s3_put_request: float = 0.005 / 1000
    s3_gb_month: float = 0.023


US_EAST_1 = RegionPrices()
PRICES: dict[str, RegionPrices] = {
    "us-east-1": US_EAST_1,
    "us-east-2": US_EAST_1,
    "us-west-2": US_EAST_1,
    "eu-west-1": US_EAST_1,
    # Frankfurt charges more for Fargate and S3 storage; Lambda's prices are the same.
    "eu-central-1": RegionPrices(
        fargate_vcpu_hour=0.04656,
        fargate_gb_hour=0.00511,
        s3_gb_month=0.0245,
    ),
}
"""By region; a region not listed is estimated at us-east-1's prices (the lowest)."""


def prices_for(region: str) -> RegionPrices:
    return PRICES.get(region, US_EAST_1)


@dataclass(frozen=True)
class Compute:
    """What runs a job, as the bill sees it."""

    route: Route
    memory_mb: int
    vcpu: float = 0.0
    """Fargate only (Lambda bills memory; its CPU follows it)."""
    ephemeral_gb: float = 0.5
    region: str = "us-east-1"

    def gb_seconds(self, seconds: float) -> float:
        return self.memory_mb / 1024 * seconds

    def cost(self, seconds: float, attempts: int = 1) -> float:
        """Compute cost of ``attempts`` runs (Lambda invocations) lasting ``seconds`` in all."""
        prices = prices_for(self.region)
        if self.route == "lambda":
            return (
                self.gb_seconds(seconds) * prices.lambda_gb_second
                + max(self.ephemeral_gb - LAMBDA_FREE_EPHEMERAL_GB, 0) * seconds * prices.lambda_ephemeral_gb_second
                + attempts * prices.lambda_request
            )
        hours = seconds / 3600
        return hours * (
            self.vcpu * prices.fargate_vcpu_hour
            + self.memory_mb / 1024 * prices.fargate_gb_hour
            + max(self.ephemeral_gb - FARGATE_FREE_EPHEMERAL_GB, 0) * prices.fargate_ephemeral_gb_hour
        )


def storage_cost(output_bytes: int, output_files: int, kept_days: float, region: str) -> float:
    """S3: one PUT per file written, and the bytes kept until the lifecycle rule expires them."""
    prices = prices_for(region)
    return output_files * prices.s3_put_request + output_bytes / GIB * kept_days / DAYS_PER_MONTH * prices.s3_gb_month


def lambda_compute(memory_mb: int, ephemeral_gb: float) -> Compute:
    """The Lambda worker, as its invocation context reports its memory and its ``/tmp`` is sized."""
    return Compute("lambda", memory_mb=memory_mb, ephemeral_gb=ephemeral_gb, region=current_region())


def fargate_compute(vcpu: float, memory_mb: int, ephemeral_gb: float) -> Compute:
    """The long-jobs task, as its task size says."""
    return Compute("fargate", memory_mb=memory_mb, vcpu=vcpu, ephemeral_gb=ephemeral_gb, region=current_region())


def current_region() -> str:
    """Where this process runs: Lambda and ECS set ``AWS_REGION`` (the local stack sets it for moto)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def round_cost(usd: float) -> float:
    return round(usd, COST_DIGITS)
