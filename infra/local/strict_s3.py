"""A strict S3 in front of moto: it refuses what S3 refuses and moto lets through.

moto accepts any signature, an expired URL, a POST that breaks its policy and a part of any size. The local stack
sends every S3 request (the functions' own calls and the presigned URLs handed to clients) to ``StrictS3Server``,
which checks it as S3 would, answers S3's status and error code when it fails, and otherwise hands it to moto's S3
(same process, same buckets). Checked:

- SigV4 only (SigV2 is refused, as buckets created since June 2020 do), for the stack's credentials and region;
  the signature recomputed over the signed headers, so a signed ``Content-Length`` binds a part's size;
- presigned URLs: ``X-Amz-Date`` + ``X-Amz-Expires``, and the signing session's lifetime (a URL dies with the
  credentials that signed it, whatever its expiry says);
- presigned POSTs: the policy's signature, expiration and every condition (fields, ``content-length-range``),
  no field the policy does not cover.

Not checked (listed in the README): the payload hash of header-signed requests, clock skew of header-signed
requests, and IAM permissions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data
from werkzeug.serving import BaseWSGIServer, make_server

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_EXPIRES_SECONDS = 7 * 24 * 3600  # S3's limit for X-Amz-Expires
# POST fields that a policy need not (and cannot) cover.
UNCOVERED_POST_FIELDS = {"policy", "x-amz-signature", "file"}
BODY_IN_MEMORY_BYTES = 8 * 1024**2
SIGV2_REFUSED = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."

Clock = Callable[[], float]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class S3Refusal(Exception):
    """What S3 answers instead of doing the request."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class SigningCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None


class StrictS3:
    """WSGI middleware over moto's S3 app (see the module docstring).

    :param session_lifetime_seconds: how long the signing session outlives a presigned URL's signing at most:
        past it the URL is refused with ``ExpiredToken``, as AWS does once a role's session has expired.
    :param clock: seconds since the epoch (tests move it forward instead of waiting).
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        credentials: SigningCredentials,
        region: str,
        session_lifetime_seconds: float,
        clock: Clock = time.time,
    ):
        self._app = app
        self._credentials = credentials
        self._region = region
        self._session_lifetime = session_lifetime_seconds
        self._clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            self._check(environ)
        except S3Refusal as refusal:
            # Read what the client is still sending, so that it sees the answer rather than a reset connection.
            _drain(environ)
            return _error_response(environ, start_response, refusal)
        return self._app(environ, start_response)

    # --- which kind of request ------------------------------------------------------------------------------

    def _check(self, environ: dict[str, Any]) -> None:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":  # a browser's CORS preflight carries no credentials; moto applies the CORS rules
            return
        if method == "PUT" and not environ.get("CONTENT_LENGTH"):
            raise S3Refusal(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        names = {name for name, _ in query}
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if "X-Amz-Algorithm" in names:
            self._check_presigned_url(environ, query)
        elif {"Signature", "AWSAccessKeyId"} & names or authorization.startswith("AWS "):
            raise S3Refusal(400, "InvalidRequest", SIGV2_REFUSED)
        elif authorization:
            self._check_signed_headers(environ, query, authorization)
        elif method == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            self._check_post(environ)
        else:
            raise S3Refusal(403, "AccessDenied", "Access Denied")  # the buckets are private

    # --- presigned URLs ----------------------------------------------------------------------------------

    def _check_presigned_url(self, environ: dict[str, Any], query: list[tuple[str, str]]) -> None:
        params = dict(query)
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise S3Refusal(400, "AuthorizationQueryParametersError", f"X-Amz-Algorithm only supports {ALGORITHM}")
        try:
            credential, amz_date = params["X-Amz-Credential"], params["X-Amz-Date"]
            expires, signed_headers = int(params["X-Amz-Expires"]), params["X-Amz-SignedHeaders"]
            signature = params["X-Amz-Signature"]
        except (KeyError, ValueError) as error:
            raise S3Refusal(
                400, "AuthorizationQueryParametersError", f"Query-string authentication requires {error}"
            ) from error
        if not 0 < expires <= MAX_PRESIGN_EXPIRES_SECONDS:
            raise S3Refusal(
                400,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be less than a week (in seconds) that is; 604800",
            )
        scope = self._scope(credential, amz_date)
        signed_at = _parse_amz_date(amz_date)
        if self._clock() > signed_at + expires:
            raise S3Refusal(403, "AccessDenied", "Request has expired")
        self._check_session(params.get("X-Amz-Security-Token"), signed_at)
        canonical = _canonical_request(
            environ,
            [(name, value) for name, value in query if name != "X-Amz-Signature"],
            signed_headers,
            payload_hash="UNSIGNED-PAYLOAD",
        )
        self._check_signature(signature, amz_date, scope, canonical)

    # --- requests signed in the Authorization header (the functions' own calls) ---------------------------

    def _check_signed_headers(self, environ: dict[str, Any], query: list[tuple[str, str]], authorization: str) -> None:
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(item.strip().split("=", 1) for item in rest.split(",") if "=" in item)
        if algorithm != ALGORITHM or not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
            raise S3Refusal(400, "InvalidArgument", "Unsupported Authorization Type")
        amz_date = environ.get("HTTP_X_AMZ_DATE", "")
        payload_hash = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
        if payload_hash is None:
            raise S3Refusal(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        scope = self._scope(fields["Credential"], amz_date)
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
        if token != self._credentials.session_token:
            raise S3Refusal(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        canonical = _canonical_request(environ, query, fields["SignedHeaders"], payload_hash=payload_hash)
        self._check_signature(fields["Signature"], amz_date, scope, canonical)

    # --- presigned POSTs ---------------------------------------------------------------------------------

    def _check_post(self, environ: dict[str, Any]) -> None:
        body = _buffer_body(environ)
        parsing = dict(environ, **{"wsgi.input": body})
        _, form, files = parse_form_data(parsing)
        body.seek(0)
        fields = {name.lower(): value for name, value in form.items()}
        if {"awsaccesskeyid", "signature"} & set(fields):
            raise S3Refusal(400, "InvalidRequest", SIGV2_REFUSED)
        missing = [
            name for name in ("policy", "x-amz-algorithm", "x-amz-credential", "x-amz-date") if name not in fields
        ]
        if missing or "x-amz-signature" not in fields:
            raise S3Refusal(
                403, "AccessDenied", f"Bucket POST must contain a field named '{(missing or ['x-amz-signature'])[0]}'."
            )
        if fields["x-amz-algorithm"] != ALGORITHM:
            raise S3Refusal(400, "InvalidArgument", f"x-amz-algorithm only supports {ALGORITHM}")
        scope = self._scope(fields["x-amz-credential"], fields["x-amz-date"])
        expected = hmac.new(self._signing_key(scope), fields["policy"].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["x-amz-signature"]):
            raise S3Refusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            policy = json.loads(base64.b64decode(fields["policy"], validate=True))
            expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            conditions = policy["conditions"]
        except (binascii.Error, ValueError, KeyError, TypeError) as error:
            raise S3Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: {error}") from error
        if self._clock() > expiration.timestamp():
            raise S3Refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        self._check_session(fields.get("x-amz-security-token"), _parse_amz_date(fields["x-amz-date"]))
        upload = files.get("file")
        if upload is None:
            raise S3Refusal(400, "InvalidArgument", "POST requires exactly one file upload per request.")
        upload.stream.seek(0, 2)
        size = upload.stream.tell()
        bucket = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
        _check_policy_conditions(conditions, fields | {"bucket": bucket}, size)

    # --- shared ------------------------------------------------------------------------------------------

    def _scope(self, credential: str, amz_date: str) -> str:
        """The credential scope (``date/region/s3/aws4_request``), once the key, date and region are right."""
        try:
            access_key, date, region, service, terminator = credential.split("/")
        except ValueError as error:
            raise S3Refusal(
                400, "AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter"
            ) from error
        if access_key != self._credentials.access_key_id:
            raise S3Refusal(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
            )
        if region != self._region:
            raise S3Refusal(
                400,
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the region '{region}' is wrong; expecting '{self._region}'",
            )
        if service != "s3" or terminator != "aws4_request" or not amz_date.startswith(date):
            raise S3Refusal(400, "AuthorizationHeaderMalformed", f"The credential scope {credential} is malformed")
        return f"{date}/{region}/{service}/{terminator}"

    def _check_session(self, token: str | None, signed_at: float) -> None:
        if token != self._credentials.session_token:
            raise S3Refusal(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
        if token is not None and self._clock() > signed_at + self._session_lifetime:
            raise S3Refusal(400, "ExpiredToken", "The provided token has expired.")

    def _signing_key(self, scope: str) -> bytes:
        key = ("AWS4" + self._credentials.secret_access_key).encode()
        for part in scope.split("/"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key

    def _check_signature(self, signature: str, amz_date: str, scope: str, canonical_request: str) -> None:
        string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = hmac.new(self._signing_key(scope), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise S3Refusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
            )


class StrictS3Server:
    """``StrictS3`` over moto's S3, served over HTTP on its own port (threaded, like moto's server)."""

    def __init__(self, strict: Callable[[WsgiApp], StrictS3], host: str = "127.0.0.1", port: int = 0):
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        self._server: BaseWSGIServer = make_server(
            host, port, strict(create_backend_app("s3")), threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="strict-s3", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"  # an IPv4 socket's address: a str

    def start(self) -> StrictS3Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _check_policy_conditions(conditions: list[Any], fields: Mapping[str, str], size: int) -> None:
    covered = {"bucket"}
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            [(name, value)] = condition.items()
            condition = ["eq", f"${name}", value]
        if not isinstance(condition, list) or len(condition) != 3:
            raise S3Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {condition}")
        operator, target, value = condition
        if str(operator).lower() == "content-length-range":
            if size > int(value):
                raise S3Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < int(target):
                raise S3Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            continue
        name = str(target).removeprefix("$").lower()
        covered.add(name)
        actual = fields.get(name, "")
        holds = (
            actual == value
            if operator == "eq"
            else actual.startswith(str(value))
            if operator == "starts-with"
            else False
        )
        if not holds:
            raise S3Refusal(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
            )
    extra = sorted(
        name
        for name in fields
        if name not in covered and name not in UNCOVERED_POST_FIELDS and not name.startswith("x-ignore-")
    )
    if extra:
        raise S3Refusal(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}")


def _canonical_request(
    environ: Mapping[str, Any], query: list[tuple[str, str]], signed_headers: str, *, payload_hash: str
) -> str:
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"))
    path = raw_uri.split("?", 1)[0] or "/"
    canonical_query = "&".join(
        f"{name}={value}" for name, value in sorted((_encode(name), _encode(value)) for name, value in query)
    )
    names = signed_headers.split(";")
    headers = "".join(f"{name}:{_header(environ, name)}\n" for name in names)
    return "\n".join([environ["REQUEST_METHOD"], path, canonical_query, headers, signed_headers, payload_hash])


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(
        name, "HTTP_" + name.upper().replace("-", "_")
    )
    return re.sub(r"\s+", " ", str(environ.get(key, "")).strip())


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _parse_amz_date(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError as error:
        raise S3Refusal(
            400, "AuthorizationQueryParametersError", f"X-Amz-Date must be in ISO 8601 format: {value}"
        ) from error


def _drain(environ: dict[str, Any]) -> None:
    stream = _Limited(environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
    while stream.read(1024**2):
        pass
    environ["CONTENT_LENGTH"] = "0"


def _buffer_body(environ: dict[str, Any]) -> Any:
    """The request body in a rewindable file (in memory up to 8 MiB), also put back for moto to read."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = tempfile.SpooledTemporaryFile(max_size=BODY_IN_MEMORY_BYTES)  # noqa: SIM115 (moto reads it afterwards)
    shutil.copyfileobj(_Limited(environ["wsgi.input"], length), body)
    body.seek(0)
    environ["wsgi.input"] = body
    return body


class _Limited:
    def __init__(self, stream: Any, remaining: int):
        self._stream, self._remaining = stream, remaining

    def read(self, size: int = -1) -> bytes:
        size = self._remaining if size < 0 else min(size, self._remaining)
        chunk = self._stream.read(size) if size else b""
        self._remaining -= len(chunk)
        return chunk


def _error_response(environ: Mapping[str, Any], start_response: Callable[..., Any], refusal: S3Refusal) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{refusal.code}</Code><Message>{escape(refusal.message)}</Message></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    if environ.get("HTTP_ORIGIN"):  # S3 applies the bucket's CORS rules to errors too: a page can read the status
        headers.append(("Access-Control-Allow-Origin", "*"))
    start_response(f"{refusal.status} {_REASONS.get(refusal.status, 'Error')}", headers)
    return [body]


_REASONS = {400: "Bad Request", 403: "Forbidden", 411: "Length Required"}
