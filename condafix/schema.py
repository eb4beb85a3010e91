"""The ``--json`` schema: results are frozen dataclasses, and this turns them into JSON values.

A field with ``metadata={"json": False}`` stays out of the document. Kept below every layer so the
change path can store a plan as JSON without importing the printer.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def to_jsonable(obj: object) -> Any:
    """Dataclasses -> dicts (tuples -> lists); the dataclasses are the JSON schema."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)
        }
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj
