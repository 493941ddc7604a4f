"""Quick start: upload a video, ask for a 360p MP4, poll until it is done, download the result.

    VIDEOJOBS_API_KEY=<key> .venv/bin/python examples/quickstart.py clip.mp4

Uses only httpx; the API is plain HTTP + JSON, so any client works the same way.
"""

import os
import sys
import time
from pathlib import Path

import httpx

API = os.environ.get("VIDEOJOBS_URL", "http://127.0.0.1:8080")
KEY = os.environ["VIDEOJOBS_API_KEY"]
video = Path(sys.argv[1])

with httpx.Client(base_url=API, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as api:
    # 1. Ask for a presigned upload, then send the file straight to S3 (never through the API).
    upload = (
        api.post(
            "/uploads",
            json={
                "filename": video.name,
                "content_type": "video/mp4",
                "size_bytes": video.stat().st_size,
            },
        )
        .raise_for_status()
        .json()
    )
    with video.open("rb") as file:
        httpx.post(upload["url"], data=upload["fields"], files={"file": file}).raise_for_status()

    # 2. Submit the job: 202 Accepted at once, with Location and Retry-After.
    response = api.post(
        "/jobs",
        json={
            "input": {"upload_id": upload["upload_id"]},
            "outputs": [{"type": "mp4", "height": 360}],
        },
        headers={"Idempotency-Key": f"quickstart-{upload['upload_id']}"},
    ).raise_for_status()
    job = response.json()
    print("submitted", job["id"], "->", response.headers["Location"])

    # 3. Poll, waiting as long as the API's Retry-After says.
    while job["status"] not in ("completed", "failed"):
        time.sleep(int(response.headers.get("Retry-After", "2")))
        response = api.get(f"/jobs/{job['id']}").raise_for_status()
        job = response.json()
        print(job["status"], f"{job['progress']}%")

if job["status"] == "failed":
    sys.exit(f"job failed: {job['error']['code']}: {job['error']['message']}")

# 4. Download each output from its presigned URL.
for index, output in enumerate(job["outputs"]):
    target = video.with_name(f"{video.stem}-{index}-{output['height']}p.mp4")
    target.write_bytes(httpx.get(output["url"]).raise_for_status().content)
    print("downloaded", target, output["size_bytes"], "bytes")
