"""Lambda SnapStart: what a function builds before its snapshot, and what a restored environment must redo.

With SnapStart (the API functions, ``wiring.Function.snap_start``), Lambda runs the init phase once when a version
is published, snapshots the memory, and starts every new environment from that snapshot. So:

- Work registered with ``before_snapshot`` (a handler's cached ``get_deps``: settings, boto3 clients, the tracer)
  runs before the snapshot and is never paid by a cold start. Building a client opens no connection (botocore
  connects on the first request), so nothing stale is restored; its credentials are refreshable (SnapStart
  functions get them from the container credentials endpoint), so they renew after a restore.
- Anything unique made at init is shared by every restored environment. Ids and secrets come from ``secrets`` /
  ``os.urandom`` at call time (the kernel's generator is reseeded on restore); ``random``'s generator, seeded
  once at import, is reseeded after each restore so retry jitter differs between environments.

Outside Lambda (tests, the local stack) the runtime's ``snapshot_restore_py`` is absent and nothing is registered:
clients are still built on first use, and no AWS client exists at import time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

Hook = TypeVar("Hook", bound=Callable[[], object])


def _runtime_library() -> ModuleType | None:
    """``snapshot_restore_py``, part of Lambda's Python 3.12+ managed runtimes, which runs the hooks only in a
    version published with SnapStart; None anywhere else."""
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]  # only on Lambda, untyped
    except ModuleNotFoundError:
        return None
    library: ModuleType = snapshot_restore_py
    return library


def reseed_random() -> None:
    """``random`` again from the system's entropy: not the state every restored environment shares."""
    random.seed()


_RUNTIME = _runtime_library()
if _RUNTIME is not None:
    _RUNTIME.register_after_restore(reseed_random)


def before_snapshot(hook: Hook) -> Hook:
    """Run ``hook`` (no arguments) in the init phase of a SnapStart version, before its snapshot."""
    if _RUNTIME is not None:
        _RUNTIME.register_before_snapshot(hook)
    return hook
