"""The declared functions, run in this process: handler strings resolved lazily and invoked with a fake context.

Handlers are imported on first use, after the local stack has set the environment, because they read their
settings (and build their AWS clients) from it.

Lambda never runs two invocations in one execution environment at a time, so handler modules may keep
per-invocation state in module globals (Powertools' ``BatchProcessor`` does). Here, each concurrent invocation
of a function gets its own "environment": a separate copy of the handler module, loaded when the existing ones
are all busy and reused afterwards, as Lambda reuses warm environments.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.lambda_context import LambdaContext
from videojobs import wiring

# Lambda resolves handler strings against the code root, which is the repository root here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[dict[str, Any], Any], Any]


def physical_function_name(name: str) -> str:
    return f"videojobs-{name}"


class Functions:
    """Every function of ``wiring.FUNCTIONS``, callable by its logical name.

    ``handlers`` replaces handler strings by function name (tests run the machinery with tiny fake handlers).
    """

    def __init__(self, region: str, account_id: str, handlers: Mapping[str, str] | None = None):
        unknown = set(handlers or {}) - set(wiring.FUNCTIONS)
        if unknown:
            raise ValueError(f"handler overrides for unknown functions: {sorted(unknown)}")
        self._region = region
        self._account_id = account_id
        self._handler_strings = {name: fn.handler for name, fn in wiring.FUNCTIONS.items()} | dict(handlers or {})
        self._idle: dict[str, list[Handler]] = {}
        self._environments: dict[str, int] = {}
        self._imported_modules: set[str] = set()
        self._lock = threading.Lock()

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Call the function's handler as Lambda would; its exceptions propagate to the caller."""
        declared = wiring.FUNCTIONS[name]
        physical = physical_function_name(name)
        context = LambdaContext(
            function_name=physical,
            memory_limit_in_mb=declared.memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:{self._account_id}:function:{physical}",
            timeout_seconds=declared.timeout_seconds,
        )
        handler = self._acquire(name)
        try:
            return handler(event, context)
        finally:
            with self._lock:
                self._idle[name].append(handler)

    def environments(self, name: str) -> int:
        """How many environments (module copies) the function has needed so far."""
        with self._lock:
            return self._environments.get(name, 0)

    def unload(self) -> None:
        """Forget the handler modules this instance imported, so that a later stack in the same process imports
        them afresh instead of reusing dependencies they cached against this stack's endpoint."""
        with self._lock:
            for module in self._imported_modules:
                sys.modules.pop(module, None)
            self._imported_modules.clear()
            self._idle.clear()
            self._environments.clear()

    def _acquire(self, name: str) -> Handler:
        with self._lock:  # loading under the lock too: it happens once per environment
            idle = self._idle.setdefault(name, [])
            if idle:
                return idle.pop()
            index = self._environments.get(name, 0)
            module_name, _, attribute = self._handler_strings[name].rpartition(".")
            handler = getattr(self._load(module_name, index), attribute)
            self._environments[name] = index + 1
            return handler

    def _load(self, module_name: str, index: int) -> ModuleType:
        if str(PROJECT_ROOT) not in sys.path:
            sys.path.insert(0, str(PROJECT_ROOT))
        if index == 0:  # the first environment is the module itself
            if module_name not in sys.modules:
                self._imported_modules.add(module_name)
            return importlib.import_module(module_name)
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(module_name)
        copy_name = f"{module_name}__env{index}"  # same package, so its imports resolve as the original's
        copy_spec = importlib.util.spec_from_file_location(copy_name, spec.origin)
        if copy_spec is None or copy_spec.loader is None:
            raise ModuleNotFoundError(module_name)
        module = importlib.util.module_from_spec(copy_spec)
        sys.modules[copy_name] = module  # registered, as tools that resolve annotations look a module up there
        self._imported_modules.add(copy_name)
        copy_spec.loader.exec_module(module)
        return module
