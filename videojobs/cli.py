"""``videojobs`` command line. ``videojobs admin create-key --tenant NAME`` prints a new API key.

Against the local stack (``make run``) it reads ``.local/stack.json`` for the endpoint and table names;
against AWS it uses your credentials and ``API_KEYS_TABLE`` (the stack's ``ApiKeysTable`` output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

LOCAL_STATE_FILE = Path(".local/stack.json")


def _use_local_stack(state_file: Path) -> None:
    """Point boto3 at the running local stack, unless the environment already says where to go."""
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    os.environ.setdefault("AWS_ENDPOINT_URL", state["moto_endpoint"])
    os.environ.setdefault("AWS_DEFAULT_REGION", state.get("region", "us-east-1"))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for name, value in state.get("env", {}).items():
        os.environ.setdefault(name, value)


def create_key(tenant: str) -> str:
    from videojobs.aws import client
    from videojobs.ids import hash_api_key, new_api_key
    from videojobs.settings import AdminSettings
    from videojobs.store import ApiKeyStore

    key = new_api_key()
    ApiKeyStore(client("dynamodb"), AdminSettings.from_env().api_keys_table).add(hash_api_key(key), tenant)
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videojobs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("admin", help="operator commands").add_subparsers(dest="admin_command", required=True)
    create = admin.add_parser("create-key", help="create an API key for a tenant; prints the key")
    create.add_argument("--tenant", required=True, help="tenant name; keys of one tenant see only its jobs")
    create.add_argument("--local-state", type=Path, default=LOCAL_STATE_FILE,
                        help="the local stack's state file (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.command == "admin" and args.admin_command == "create-key":
        if not args.tenant.strip() or len(args.tenant) > 128:
            parser.error("--tenant must be 1 to 128 characters")
        _use_local_stack(args.local_state)
        print(create_key(args.tenant.strip()), flush=True)
        print(f"created an API key for tenant {args.tenant.strip()!r}; it is shown only once", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
