"""A dry run's estimate: which worker would run a job, for how long, at what cost, before anything is decoded.

The submit function does not open media (PyAV and ffmpeg live in the worker's image), so the estimate reads the
upload's size and assumes a reference input: ``REFERENCE_BITRATE`` of 1080p30 H.264 with AAC. The worker's own
encode model (``outputs.plan_encode``) and routing rule then say how long and where. The worker measures the real
input before it routes (``media.probe``; a header without a duration is measured by a packet scan).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from videojobs import wiring
from videojobs.media import Probe
from videojobs.models import Estimate, MediaMetadata, StoredOutput
from videojobs.outputs import plan_encode
from videojobs.pricing import fargate_compute, lambda_compute, round_cost
from videojobs.service.processing import DISK_HEADROOM
from videojobs.settings import SubmitSettings

REFERENCE_BITRATE = 8_000_000
"""Bits per second of an input we have not opened: 1080p H.264 as phones and cameras record it."""
REFERENCE_INPUT = MediaMetadata(
    format="mov,mp4,m4a,3gp,3g2,mj2", width=1920, height=1080, fps=30.0, video_codec="h264", audio_codec="aac"
)
LAMBDA_SCRATCH_BYTES = 10240 * 1024**2
"""The Lambda worker's ``/tmp`` at its largest: an input that cannot fit there (with its outputs) goes to Fargate."""


def estimate(outputs: list[StoredOutput], input_bytes: int, settings: SubmitSettings) -> Estimate:
    """How long the job would take, on which worker, and its compute cost at list prices."""
    duration = input_bytes * 8 / REFERENCE_BITRATE
    probe = Probe(REFERENCE_INPUT.model_copy(update={"duration_seconds": duration}), "mov", 0, 1)
    with tempfile.TemporaryDirectory(prefix="estimate-") as scratch:
        seconds = plan_encode(outputs, probe, Path(scratch), settings.work_pixels_per_second).work_seconds
    too_big = input_bytes * DISK_HEADROOM > LAMBDA_SCRATCH_BYTES
    if too_big or seconds > settings.lambda_time_budget_seconds:
        service = wiring.SERVICES["long_worker"]
        compute = fargate_compute(service.cpu / 1024, service.memory_mb, service.ephemeral_storage_gib)
        return Estimate(
            processing_seconds=round(seconds, 1), estimated_cost_usd=round_cost(compute.cost(seconds)), route="fargate"
        )
    compute = lambda_compute(wiring.FUNCTIONS["process"].memory_mb, ephemeral_gb=LAMBDA_SCRATCH_BYTES / 1024**3)
    return Estimate(
        processing_seconds=round(seconds, 1), estimated_cost_usd=round_cost(compute.cost(seconds)), route="lambda"
    )
