"""The NOTIFY payload schema (sql/events/notify.v1.schema.json), as tests check it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "sql" / "events" / "notify.v1.schema.json"
_VALIDATOR = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def schema_errors(payload: Any) -> list[str]:
    """Why `payload` is not a valid version-1 event (empty: it is one)."""
    return [e.message for e in _VALIDATOR.iter_errors(payload)]


def checked(raw: str) -> dict[str, Any]:
    """A payload as received, parsed; AssertionError naming the fault if it breaks the schema."""
    payload: dict[str, Any] = json.loads(raw)
    errors = schema_errors(payload)
    assert not errors, f"{payload.get('type')} payload breaks the schema: {errors[:3]}: {raw}"
    return payload
