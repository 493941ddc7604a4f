"""What the API document needs to know of a route that Powertools cannot tell it.

``api.Operation`` describes a resolver's route; a plain handler (the SSE function, which holds its request too long
for a resolver) describes its one route with :class:`PlainOperation`, exported as ``OPERATION``. This module stays
free of Powertools' event handler, which such a handler would otherwise import at its cold start for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

ERRORS_EXTENSION = "x-videojobs-errors"
"""Where an operation lists the error codes only it answers (``tools/openapi.py`` turns them into answers)."""


@dataclass(frozen=True)
class PlainOperation:
    """The route of a plain handler, described by hand; ``tools/openapi.py`` and the route test read it."""

    method: str
    path: str
    """As ``wiring.ROUTES`` spells it."""
    operation: dict[str, Any]
    """The OpenAPI operation object; it may refer to ``models`` as ``#/components/schemas/<name>``."""
    models: tuple[type[BaseModel], ...] = ()
