"""API Gateway REQUEST authorizer: ``Authorization: Bearer <key>`` -> the key's tenant, or 401.

It also names the tenant's API Gateway key (``usageIdentifierKey``), whose usage plan holds the tenant's request
rate (``videojobs.usage_plans``).

The policy allows every route of the stage because API Gateway caches it per key for all routes. An unknown key
gets a Deny policy rather than the documented ``raise Exception("Unauthorized")``: Lambda counts a raise as a
function error, so every bad key would page the Errors alarm. API Gateway answers a Deny with ACCESS_DENIED
(403), which the stack's gateway responses turn into our 401 ``unauthorized``.

It runs before every uncached request, so it imports the standard library, boto3 and ``videojobs.api_keys``
only: no pydantic, no Powertools (its event classes and logger cost more than the rest of this function's cold
start). ``tests/unit/test_cold_imports.py`` fails if one comes back.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from videojobs import snapstart
from videojobs.api_keys import ApiKeyStore
from videojobs.aws import client
from videojobs.ids import hash_api_key
from videojobs.usage_plans import usage_key

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

UNKNOWN_PRINCIPAL = "unknown"
API_KEYS_TABLE = "API_KEYS_TABLE"
"""What ``settings.AuthorizerSettings`` declares (a pydantic model, for infra and the tests), read without pydantic:
``tests/unit/test_cold_imports.py`` holds the two together."""


@snapstart.before_snapshot  # the client is in the snapshot, not in a cold start
@cache
def get_keys() -> ApiKeyStore:
    table = os.environ.get(API_KEYS_TABLE)
    if not table:
        raise RuntimeError(f"{API_KEYS_TABLE} is not set")  # fails the cold start, not a request
    return ApiKeyStore(client("dynamodb"), table)


def bearer_token(headers: dict[str, str]) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def stage_routes(method_arn: str) -> str:
    """Every route of the stage that ``method_arn`` (``arn:aws:execute-api:<region>:<account>:<api>/<stage>/GET/x``)
    belongs to: ``…:<api>/<stage>/*/*``."""
    prefix, _, path = method_arn.partition(":execute-api:")
    region, account, api_path = path.split(":", 2)
    api_id, stage = api_path.split("/")[:2]
    return f"{prefix}:execute-api:{region}:{account}:{api_id}/{stage}/*/*"


def policy(
    principal: str,
    effect: str,
    method_arn: str,
    context: dict[str, str] | None,
    usage_identifier_key: str | None = None,
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": [stage_routes(method_arn)]}],
        },
    }
    if context:
        answer["context"] = context
    if usage_identifier_key:
        # The tenant's key in its usage plan: API Gateway throttles it before any function runs.
        answer["usageIdentifierKey"] = usage_identifier_key
    return answer


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token = bearer_token(event.get("headers") or {})
    tenant = get_keys().tenant_for(hash_api_key(token)) if token else None
    if tenant is None:
        from videojobs.observability import logger  # a rejection only: Powertools' import stays off the hot path

        logger.info("rejected request", extra={"has_token": token is not None})
        return policy(UNKNOWN_PRINCIPAL, "Deny", event["methodArn"], None)
    api_id = event["methodArn"].split(":", 5)[5].split("/")[0]
    return policy(tenant, "Allow", event["methodArn"], {"tenant_id": tenant}, usage_key(api_id, tenant))
