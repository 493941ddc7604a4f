"""GET /playback/{token}/{name}: the HLS playlists of a completed job, behind signed links a player follows
without an ``Authorization`` header (``videojobs.playback`` explains the design)."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, playback, snapstart
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, traced
from videojobs.service.playback import PlaybackDeps, playlist
from videojobs.settings import PlaybackSettings

app = api.new_resolver()


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> PlaybackDeps:
    settings = PlaybackSettings.from_env()
    return PlaybackDeps(
        settings=settings, jobs=JobStore(client("dynamodb"), settings.jobs_table), objects=ObjectStore(client("s3"))
    )


GET_PLAYLIST = api.Operation(
    "An HLS playlist",
    HTTPStatus.OK,
    str,
    "The `url` of an `hls` output is this route's master playlist; variant playlists resolve under the same signed "
    "path, and list each segment as a presigned S3 URL. No API key: the token in the path is the authorization, "
    "valid as long as the job's download URLs.",
    errors=(ErrorCode.FORBIDDEN,),
    media_type=playback.CONTENT_TYPE,
)


@app.get("/playback/<token>/<name>", **GET_PLAYLIST.route())
def get_playlist(token: Annotated[str, Path(max_length=200)], name: Annotated[str, Path(max_length=64)]):
    found = playlist(token, name, get_deps())
    # A growing EVENT playlist (the job still runs) must not be cached: the player reloads it for new segments.
    cache = "private, max-age=60" if found.final else "no-store"
    # Browser players (hls.js) fetch playlists from the page's origin; the link is the credential, not a cookie.
    return GET_PLAYLIST.answer(found.text, headers={"Cache-Control": cache, "Access-Control-Allow-Origin": "*"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
