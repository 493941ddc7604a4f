"""The authorizer, invoked as Lambda runs it: an unknown key is a Deny policy, not a function error."""

from __future__ import annotations

from infra.local.functions import Functions
from infra.local.gateway import policy_allows
from infra.local.resources import Resources
from videojobs.api_keys import ApiKeyStore
from videojobs.aws import client
from videojobs.ids import hash_api_key, new_api_key
from videojobs.usage_plans import usage_key

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/v1/GET/jobs"


def request(token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers, "requestContext": {}}


def test_a_known_key_is_allowed_with_its_tenant_and_an_unknown_one_denied_without_a_function_error(
    aws: Resources,
) -> None:
    key = new_api_key()
    ApiKeyStore(client("dynamodb"), aws.tables["api_keys"]).add(hash_api_key(key), "acme")
    functions = Functions("us-east-1", "123456789012")
    try:
        allowed = functions.invoke("authorizer", request(key))
        denied = [functions.invoke("authorizer", request(token)) for token in ("vj_unknown", "")]
    finally:
        functions.unload()

    assert policy_allows(allowed["policyDocument"], METHOD_ARN)
    assert allowed["context"] == {"tenant_id": "acme"}
    # The tenant's key in its usage plan (the API's id comes from the method ARN): API Gateway throttles it.
    assert allowed["usageIdentifierKey"] == usage_key(METHOD_ARN.split(":")[5].split("/")[0], "acme")
    for answer in denied:
        assert not policy_allows(answer["policyDocument"], METHOD_ARN)
        assert "tenant_id" not in (answer.get("context") or {})
        assert "usageIdentifierKey" not in answer
    assert functions.errors() == 0  # a bad key must not count in the Errors alarm
