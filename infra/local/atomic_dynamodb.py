"""Make moto's DynamoDB apply one request at a time, as DynamoDB applies each write atomically.

moto checks a ``ConditionExpression`` and then writes, with nothing in between held: two threads of its
server can both pass the same condition (two workers claiming one job, two idempotent submits both
creating a job). DynamoDB never lets that happen, and our correctness rests on it, so the local stack and
the in-process tests serialize moto's DynamoDB requests. Other services are left concurrent.
"""

from __future__ import annotations

import functools
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

_lock = threading.RLock()


def make_dynamodb_atomic() -> None:
    """Idempotent: patching twice wraps once."""
    _keep_streams_through_cancelled_transactions()
    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self):  # type: ignore[no-untyped-def]
        with _lock:
            return original(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


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
    def transact_write_items(self, transact_items):  # type: ignore[no-untyped-def]
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
