"""Field types shared by the request models, and how a failed validation reads as an error.

Each constraint is stated once, in the type, so the JSON Schema the OpenAPI document publishes is
the check the server runs. Patterns are written in the common subset of Python's and
ECMA-262's syntax, because clients read them with the latter.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from wafleet.actors.assistant.config import field_path  # the one spelling of a field's path

# Control characters (Unicode Cc) are refused: PostgreSQL refuses NUL in text and no log should
# carry an escape sequence. Lone surrogates never get this far: they are not valid strings.
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Text that may span lines: newline and tab, and a Windows line end (CR only before LF).
MULTILINE = r"^(?:[^\x00-\x08\x0b-\x1f\x7f-\x9f]|\r\n)*$"
# Some visible text, on top of MULTILINE.
SOME_TEXT = r"^(?=[\s\S]*\S)(?:[^\x00-\x08\x0b-\x1f\x7f-\x9f]|\r\n)*$"
NOT_BLANK = r"^(?=[\s\S]*\S)[^\x00-\x1f\x7f-\x9f]*$"
DIGITS = r"^[0-9]{1,18}$"

# What a pattern means, said in an error instead of the pattern itself.
PATTERN_WORDS = {
    ONE_LINE: "must not contain control characters or lone surrogates",
    MULTILINE: "must not contain control characters other than newline and tab",
    SOME_TEXT: "must hold some text (1 to {max} characters), with no control characters other than "
    "newline and tab",
    NOT_BLANK: "must be a non-empty string without control characters",
    DIGITS: "must be a whole number",
}


class Model(BaseModel):
    """A request body: unknown fields refused, JSON types taken as they are (no "1" for 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re", populate_by_name=False)


class Query(BaseModel):
    """A query string: every value arrives as text; numbers are converted by their field type."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class Reply(BaseModel):
    """A response body: the fields a client may rely on; a newer node may add more."""

    model_config = ConfigDict(extra="allow")


def text(max_length: int, *, pattern: str = NOT_BLANK, min_length: int = 0) -> Any:
    """A string of at most ``max_length`` characters matching ``pattern``."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, pattern=pattern)]


# Strings whose pattern is a node setting (WHATSAPP_ALLOWED_PHONE_PATTERN,
# WHATSAPP_COMPANY_ID_PATTERN): the models mark them, validation reads the pattern from the
# context the contract passes, and the document writes the node's pattern in place of the mark.
MARK = "x-node-pattern"
NODE_CODES = {"phone": "invalid_phone", "company_id": "invalid_company_id"}
NODE_WORDS = {
    "phone": "must match {pattern} (digits with country code, no +)",
    "company_id": "must match {pattern} and be at most 64 characters",
}


def _node_pattern(kind: str) -> Any:
    def check(value: str, info: ValidationInfo) -> str:
        patterns = (info.context or {}).get("patterns") or {}
        pattern = patterns.get(kind)
        if pattern is not None and not pattern.fullmatch(value):
            raise PydanticCustomError(NODE_CODES[kind], "does not match the node's pattern")
        return value

    return check


def node_string(kind: str) -> Any:
    return Annotated[
        str,
        StringConstraints(max_length=64),
        AfterValidator(_node_pattern(kind)),
        Field(json_schema_extra={MARK: kind}),
    ]


Phone = node_string("phone")
CompanyId = node_string("company_id")


# A field whose refusal has an error code of its own (the API's older, more precise codes).
CODE_MARK = "x-error-code"


def coded(code: str) -> Any:
    """Annotated metadata: a refusal of this field answers ``code`` instead of invalid_field."""
    return Field(json_schema_extra={CODE_MARK: code})


def node_schema(schema: Any, patterns: dict[str, re.Pattern[str]]) -> Any:
    """A JSON Schema with each node mark replaced by the node's pattern."""
    if isinstance(schema, dict):
        out = {k: node_schema(v, patterns) for k, v in schema.items() if k not in (MARK, CODE_MARK)}
        if MARK in schema:
            out["pattern"] = patterns[schema[MARK]].pattern
        return out
    if isinstance(schema, list):
        return [node_schema(v, patterns) for v in schema]
    return schema


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional() -> Any:
    """A field that may be left out but, when sent, may not be null: its absence is the
    default (the handler reads ``model_fields_set`` to tell)."""
    return Field(default=None, json_schema_extra=_drop_default)


def _whole_number(value: Any) -> Any:
    if isinstance(value, str):
        if not re.fullmatch(DIGITS, value):
            raise PydanticCustomError("whole_number", "must be a whole number")
        return int(value)
    return value


def query_int(low: int, high: int) -> Any:
    """A whole number written in decimal digits (no sign, no spaces, no underscores)."""
    return Annotated[int, BeforeValidator(_whole_number), Field(ge=low, le=high)]


def first_error(
    exc: ValidationError, model: type[BaseModel], patterns: dict[str, re.Pattern[str]] | None = None
) -> tuple[str, str, str]:
    """(code, field path, message) of the first problem: code is "unknown" for a field the
    model does not have, "invalid_phone"/"invalid_company_id" for a node-pattern field,
    "invalid" otherwise."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = field_path(loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    node = _mark_at(model, loc, MARK) if kind != "extra_forbidden" else None
    own_code = _mark_at(model, loc, CODE_MARK) if kind != "extra_forbidden" else None
    if node == "company_id" and kind in ("string_type", "missing"):
        node = None  # not a string at all: the field is wrong, not the id
    if node is not None:
        pattern = (patterns or {}).get(node)
        words = NODE_WORDS[node].format(pattern=pattern.pattern if pattern else "the node's pattern")
        return NODE_CODES[node], path, f"{path} {words}"
    if own_code is not None:
        return own_code, path, f"{path}: {error['msg'][:1].lower()}{error['msg'][1:]}"
    if kind == "extra_forbidden":
        allowed = _allowed_at(model, loc[:-1])
        said = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return "unknown", path, f"unknown field {path}{said}"
    if kind == "missing":
        return "invalid", path, f"{path} is required"
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(ctx.get("pattern", ""))
        if words:
            high = _max_length(model, loc)
            return "invalid", path, f"{path} {words.format(max=high)}"
        return "invalid", path, f"{path} must match {ctx.get('pattern')}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "invalid", path, f"{path} must be an object"
    if kind == "string_unicode" or kind == "string_sub_type":
        return "invalid", path, f"{path} must not contain control characters or lone surrogates"
    message = error["msg"]
    return "invalid", path, f"{path}: {message[:1].lower()}{message[1:]}" if path else message


def _mark_at(model: type[BaseModel], loc: tuple[int | str, ...], key: str) -> str | None:
    """The mark ``key`` of the field at ``loc`` (or of its items), if it has one."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return None
    parent = _field_model(model, tuple(loc[: max(i for i, p in enumerate(loc) if isinstance(p, str))]))
    if parent is None:
        return None
    found = next((f for n, f in parent.model_fields.items() if (f.alias or n) == names[-1]), None)
    if found is None:
        return None
    return _mark_in([found], key) or _mark_in(found.metadata, key) or _mark_in([found.annotation], key)


def _mark_in(items: Any, key: str) -> str | None:
    for item in items:
        if isinstance(item, FieldInfo):
            extra = item.json_schema_extra
            if isinstance(extra, dict) and key in extra:
                return str(extra[key])
        for arg in getattr(item, "__metadata__", ()) + tuple(getattr(item, "__args__", ()) or ()):
            found = _mark_in([arg], key)
            if found is not None:
                return found
    return None


def _field_model(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        found = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part),
            None,
        )
        if found is None:
            return None
        current = _inner_model(found.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _allowed_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    target = _field_model(model, loc)
    if target is None:
        return []
    return sorted(f.alias or n for n, f in target.model_fields.items())


def _max_length(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    parent = _field_model(model, loc[:-1]) if loc else None
    if parent is None or not isinstance(loc[-1], str):
        return "?"
    schema = parent.model_json_schema(mode="validation").get("properties", {}).get(loc[-1], {})
    return schema.get("maxLength", "?")
