"""The web page (``/``) and the API docs (``/docs``, Swagger UI over ``/openapi.json``) as static files.

The local stack serves them in front of the gateway; ``python -m infra.local.web DIR [--api-url URL]`` writes the
same files to a folder for any static host (S3, CloudFront, GitHub Pages). The player library and Swagger UI come
from npm (``make web`` runs ``npm ci`` in ``web/``): nothing is fetched from a CDN at run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from pathlib import Path

from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
NODE_MODULES = WEB / "node_modules"

# Published name -> file. Relative links between them work at any prefix.
FILES: dict[str, Path] = {
    "index.html": WEB / "index.html",
    "app.js": WEB / "app.js",
    "style.css": WEB / "style.css",
    "docs.html": WEB / "docs.html",
    "openapi.json": ROOT / "openapi.json",
    "vendor/hls.min.js": NODE_MODULES / "hls.js" / "dist" / "hls.min.js",
    "vendor/swagger-ui/swagger-ui.css": NODE_MODULES / "swagger-ui-dist" / "swagger-ui.css",
    "vendor/swagger-ui/swagger-ui-bundle.js": NODE_MODULES / "swagger-ui-dist" / "swagger-ui-bundle.js",
}
ALIASES = {"": "index.html", "docs": "docs.html"}
CONFIG = "config.json"

log = logging.getLogger(__name__)


def missing_files() -> list[str]:
    return [name for name, path in FILES.items() if not path.exists()]


class StaticSite:
    """ASGI: GET/HEAD of a published file is answered here, everything else goes on to ``app`` (the API).

    ``config`` is served as ``/config.json``: the local stack puts its dev API key there, so that the page
    works as soon as it opens."""

    def __init__(self, app: ASGIApp, config: dict[str, str] | None = None):
        self._app = app
        self._config = config or {}
        if missing_files():
            log.warning("web page files missing (run make web): %s", ", ".join(missing_files()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._static(scope) if scope["type"] == "http" else None
        if response is None:
            await self._app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _static(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        name = scope["path"].lstrip("/")
        name = ALIASES.get(name, name)
        if name == CONFIG:
            return JSONResponse(self._config, headers={"Cache-Control": "no-store"})
        path = FILES.get(name)
        if path is None or not path.exists():
            return None
        return FileResponse(path, headers={"Cache-Control": "no-cache"})


_QUERY = re.compile(r"\?[^\s\"]*")
_PLAYBACK_TOKEN = re.compile(r"job_[0-9a-f]{32}\.\d+\.\d+\.[A-Za-z0-9_-]{43}")


class RedactSecrets(logging.Filter):
    """For the server's own request lines: no query string (WebSocket tickets, presigned signatures) and no
    playback token. API Gateway's access logs, which these stand for, log the resource path, not the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = _PLAYBACK_TOKEN.sub("{token}", _QUERY.sub("?…", message)), None
        return True


REDACT_SECRETS = RedactSecrets()
"""One instance: adding it again (another stack in the same process) is then a no-op."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class LoopbackHostOnly:
    """ASGI: every request (HTTP and WebSocket) must name a loopback host (any port) in ``Host``. A page on
    another site that rebinds its DNS name to 127.0.0.1 still sends its own name: it reaches nothing here,
    not the dev key in /config.json nor the API. ``also`` admits the host the stack was bound to."""

    def __init__(self, app: ASGIApp, also: str | None = None):
        self._app = app
        self._allowed = LOOPBACK_HOSTS | ({also.lower()} if also else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._host_of(scope) in self._allowed:
            await self._app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before the accept: the handshake gets 403
            return
        body = {
            "error": {"code": "forbidden", "message": "the local stack answers only 127.0.0.1, localhost and [::1]"}
        }
        await JSONResponse(body, status_code=403)(scope, receive, send)

    @staticmethod
    def _host_of(scope: Scope) -> str:
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) != 1:
            return ""
        host = hosts[0].decode("latin-1").strip().lower()
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit() and (not name.startswith("[") or name.endswith("]")):
            host = name  # drop the port (an IPv6 literal keeps its brackets)
        return host


def export(directory: Path, api_url: str | None = None) -> list[Path]:
    """Copy the site into ``directory``; ``api_url`` goes into its config.json (else the page asks)."""
    missing = missing_files()
    if missing:
        raise FileNotFoundError(f"missing (run make web): {', '.join(missing)}")
    written = []
    for name, source in FILES.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    if api_url:
        (directory / CONFIG).write_text(json.dumps({"api_url": api_url}) + "\n")
        written.append(directory / CONFIG)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.web", description="Write the web page as static files."
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--api-url", help="the API the page talks to (e.g. the API Gateway stage URL)")
    args = parser.parse_args(argv)
    try:
        written = export(args.directory, args.api_url)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files to {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
