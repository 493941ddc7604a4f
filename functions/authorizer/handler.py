"""API Gateway REQUEST authorizer: ``Authorization: Bearer <key>`` -> the key's tenant, or 401.

The policy allows every route of the stage because API Gateway caches it per key for all routes. An unknown key
gets a Deny policy rather than the documented ``raise Exception("Unauthorized")``: Lambda counts a raise as a
function error, so every bad key would page the Errors alarm. API Gateway answers a Deny with ACCESS_DENIED
(403), which the stack's gateway responses turn into our 401 ``unauthorized``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client
from videojobs.ids import hash_api_key
from videojobs.job_store import ApiKeyStore
from videojobs.observability import logger
from videojobs.settings import AuthorizerSettings

UNKNOWN_PRINCIPAL = "unknown"


@cache
def get_keys() -> ApiKeyStore:
    return ApiKeyStore(client("dynamodb"), AuthorizerSettings.from_env().api_keys_table)


def bearer_token(headers: dict[str, str]) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    token = bearer_token(request.headers or {})
    tenant = get_keys().tenant_for(hash_api_key(token)) if token else None
    arn = request.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=tenant or UNKNOWN_PRINCIPAL,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"tenant_id": tenant} if tenant else None,
    )
    if tenant is None:
        logger.info("rejected request", extra={"has_token": token is not None})
        policy.deny_all_routes()
    else:
        policy.allow_all_routes()
    return policy.asdict()
