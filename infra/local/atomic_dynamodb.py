"""moto's DynamoDB, made to behave as DynamoDB does where our code depends on it.

- **Atomic requests.** moto checks a ``ConditionExpression`` and then writes, with nothing in between held: two
  threads of its server can both pass the same condition (two workers claiming one job). DynamoDB never lets
  that happen, and our correctness rests on it, so every DynamoDB request is applied one at a time.
- **Transaction conflicts** (on by default). DynamoDB cancels a ``TransactWriteItems`` that touches an item
  another transaction is still writing, with the reason ``TransactionConflict``; the first one has not
  committed yet, so the loser reads nothing of it. Here a transaction holds its items for
  ``transaction_seconds`` before it is applied, and a second one on any of them meanwhile is cancelled so.
- **Eventually consistent reads** (opt-in: ``stale_read_seconds``). A ``GetItem`` or ``Query`` without
  ``ConsistentRead`` (and every query of a global secondary index) sees each item as it was that many seconds
  ago: a job read right after it was written is not there yet, as DynamoDB may answer for a moment.

``emulate()`` sets the last two for the process (moto's backends are process-wide); tests use it as a
context manager.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.responses import DynamoHandler

DEFAULT_TRANSACTION_SECONDS = 0.05
"""How long a transaction holds its items: DynamoDB's take tens of milliseconds."""

_lock = threading.RLock()
ItemKey = tuple[str, str, str, str]  # account, region, table, the key's attributes as JSON


@dataclass
class _State:
    stale_read_seconds: float = 0.0
    transaction_seconds: float = DEFAULT_TRANSACTION_SECONDS
    conflicts: int = 0
    in_flight: set[ItemKey] = field(default_factory=set)
    # item -> (hash key, range key, [(when written, the item before that write)]), for stale reads
    history: dict[ItemKey, tuple[DynamoType, DynamoType | None, list[tuple[float, Any]]]] = field(default_factory=dict)


_state = _State()


def make_dynamodb_atomic() -> None:
    """Install the emulation into moto (idempotent: patching twice wraps once)."""
    _keep_streams_through_cancelled_transactions()
    if getattr(DynamoHandler.call_action, "_emulated", False):
        return
    DynamoHandler.call_action = _call_action(DynamoHandler.call_action)  # type: ignore[method-assign]
    DynamoHandler.call_action._emulated = True  # type: ignore[attr-defined]
    DynamoHandler.transact_write_items = _cancel_conflicting(DynamoHandler.transact_write_items)  # type: ignore[assignment]
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
        setattr(DynamoHandler, name, _remember_writes(getattr(DynamoHandler, name)))
    for name in ("get_item", "query"):
        setattr(DynamoHandler, name, _read_eventually(getattr(DynamoHandler, name)))


@contextlib.contextmanager
def emulate(
    *, stale_read_seconds: float = 0.0, transaction_seconds: float = DEFAULT_TRANSACTION_SECONDS
) -> Iterator[None]:
    """Within the block, eventually consistent reads lag ``stale_read_seconds`` behind the writes and a
    transaction holds its items for ``transaction_seconds``; the defaults are restored after it."""
    make_dynamodb_atomic()
    configure(stale_read_seconds=stale_read_seconds, transaction_seconds=transaction_seconds)
    try:
        yield
    finally:
        configure()


def configure(*, stale_read_seconds: float = 0.0, transaction_seconds: float = DEFAULT_TRANSACTION_SECONDS) -> None:
    with _lock:
        _state.stale_read_seconds = stale_read_seconds
        _state.transaction_seconds = transaction_seconds
        _state.history.clear()


def transaction_conflicts() -> int:
    """Transactions cancelled with ``TransactionConflict`` so far (tests check that a race really happened)."""
    return _state.conflicts


# --- atomicity and transaction conflicts ---------------------------------------------------------------------


def _call_action(original: Callable[[DynamoHandler], Any]) -> Callable[[DynamoHandler], Any]:
    @functools.wraps(original)
    def call_action(self: DynamoHandler) -> Any:
        held: list[ItemKey] = []
        if self._get_action() == "TransactWriteItems" and _state.transaction_seconds > 0:
            with _lock:
                keys = _transaction_keys(self)
                busy = [key in _state.in_flight for key in keys]
                if any(busy):
                    self._conflicting = busy  # type: ignore[attr-defined]
                    _state.conflicts += 1
                else:
                    held = [key for key in keys if key is not None]
                    _state.in_flight.update(held)
            if held:
                time.sleep(_state.transaction_seconds)  # in flight, not yet visible: others conflict with it
        try:
            with _lock:
                return original(self)
        finally:
            if held:
                with _lock:
                    _state.in_flight.difference_update(held)

    return call_action


def _cancel_conflicting(original: Callable[[DynamoHandler], Any]) -> Callable[[DynamoHandler], Any]:
    @functools.wraps(original)
    def transact_write_items(self: DynamoHandler) -> Any:
        busy = getattr(self, "_conflicting", None)
        if busy:
            raise TransactionCanceledException(
                [
                    ("TransactionConflict", "Transaction is ongoing for the item", None) if b else (None, None, None)
                    for b in busy
                ]
            )
        return original(self)

    return transact_write_items


def _transaction_keys(handler: DynamoHandler) -> list[ItemKey | None]:
    keys: list[ItemKey | None] = []
    for operation in getattr(handler, "params", {}).get("TransactItems", []):
        ((kind, request),) = operation.items()
        keys.append(
            _item_key(handler, request["TableName"], request.get("Item") if kind == "Put" else request.get("Key"))
        )
    return keys


def _item_key(handler: DynamoHandler, table_name: str, attributes: dict[str, Any] | None) -> ItemKey | None:
    try:
        table = handler.dynamodb_backend.get_table(table_name)
    except Exception:  # an unknown table: moto answers that request itself
        return None
    names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
    if attributes is None or any(name not in attributes for name in names):
        return None
    key = json.dumps({name: attributes[name] for name in names}, sort_keys=True, default=str)
    return handler.current_account, handler.region, table_name, key


# --- eventually consistent reads ------------------------------------------------------------------------------


def _remember_writes(original: Callable[[DynamoHandler], Any]) -> Callable[[DynamoHandler], Any]:
    """Keep, for each item written within the stale-read window, what it was before."""

    @functools.wraps(original)
    def write(self: DynamoHandler) -> Any:
        if _state.stale_read_seconds <= 0:
            return original(self)
        keys = [key for key in _written_keys(self) if key is not None]
        before = {key: _stored(self, key) for key in keys}
        result = original(self)
        now = time.monotonic()
        for key, (hash_key, range_key, old) in before.items():
            _, _, new = _stored(self, key)
            if _as_json(old) != _as_json(new):
                _state.history.setdefault(key, (hash_key, range_key, []))[2].append((now, old))
        return result

    return write


def _written_keys(handler: DynamoHandler) -> list[ItemKey | None]:
    body = handler.body
    if "TransactItems" in body:
        return _transaction_keys(handler)
    if "RequestItems" in body:
        return [
            _item_key(
                handler,
                table,
                (request.get("PutRequest") or {}).get("Item") or (request.get("DeleteRequest") or {}).get("Key"),
            )
            for table, requests in body["RequestItems"].items()
            for request in requests
        ]
    return [_item_key(handler, body["TableName"], body.get("Item") or body.get("Key"))]


def _stored(handler: DynamoHandler, key: ItemKey) -> tuple[DynamoType, DynamoType | None, Any]:
    table = handler.dynamodb_backend.get_table(key[2])
    attributes = json.loads(key[3])
    hash_key = DynamoType(attributes[table.hash_key_attr])
    range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))


def _as_json(item: Any) -> str | None:
    return None if item is None else json.dumps(item.to_json(), sort_keys=True, default=str)


def _read_eventually(original: Callable[[DynamoHandler], Any]) -> Callable[[DynamoHandler], Any]:
    """Answer a read that is not strongly consistent from the items as they were ``stale_read_seconds`` ago."""

    @functools.wraps(original)
    def read(self: DynamoHandler) -> Any:
        if _state.stale_read_seconds <= 0 or self.body.get("ConsistentRead"):
            return original(self)
        table = self.dynamodb_backend.get_table(self.body["TableName"])
        stale = _stale_items(self.current_account, self.region, table.name)
        if not stale:
            return original(self)
        current = table.items
        view: defaultdict[Any, Any] = defaultdict(dict, current)
        for hash_key, range_key, item in stale:
            if range_key is None:
                view.pop(hash_key, None) if item is None else view.__setitem__(hash_key, item)
                continue
            rows = view[hash_key] = dict(view.get(hash_key, {}))
            rows.pop(range_key, None) if item is None else rows.__setitem__(range_key, item)
        table.items = view
        try:
            return original(self)
        finally:
            table.items = current

    return read


def _stale_items(account: str, region: str, table: str) -> list[tuple[DynamoType, DynamoType | None, Any]]:
    """For each item of the table written within the window: the version from before the window."""
    horizon = time.monotonic() - _state.stale_read_seconds
    found = []
    for key, (hash_key, range_key, writes) in list(_state.history.items()):
        if key[:3] != (account, region, table):
            continue
        writes[:] = [write for write in writes if write[0] > horizon]
        if not writes:
            del _state.history[key]
            continue
        found.append((hash_key, range_key, writes[0][1]))
    return found


# --- streams ------------------------------------------------------------------------------------------------


def _keep_streams_through_cancelled_transactions() -> None:
    """A cancelled transaction leaves no stream record, and the stream goes on, as in DynamoDB.

    moto rolls a cancelled ``TransactWriteItems`` back by putting deep copies of the tables in place, stream
    shards included: the records of the writes that were undone stay in the old shard, which readers keep
    reading through their iterators while new records go to the copy under reused sequence numbers. Here
    the old shard is kept, cut back to where it was, and put back in the restored table."""
    if getattr(DynamoDBBackend.transact_write_items, "_streams_kept", False):
        return
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self, transact_items):
        shards = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if getattr(table, "stream_shard", None) is not None
        }
        try:
            return original(self, transact_items)
        except Exception:
            for name, (shard, length) in shards.items():
                table = self.tables.get(name)
                if table is not None and table.stream_shard is not shard:  # this table was restored
                    del shard.items[length:]
                    shard.table = table
                    table.stream_shard = shard
            raise

    transact_write_items._streams_kept = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
