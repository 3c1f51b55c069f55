"""A generic, deterministic "model" for LocalSiliconCloud, used by our test setup.

Where a test needs a model's *decision* (call a tool, with which arguments; answer
in JSON), this responder decides the way a simple, obedient model would, from the
request alone (it knows nothing about which test is running):

- tools bound and ``tool_choice`` forcing a call (``"required"`` or a named tool):
  call that tool (named) or the first tool;
- tools bound, ``tool_choice`` ``"auto"``/absent: call the first tool once, i.e.
  while the conversation holds no tool result yet; then answer in text;
- arguments are valid against the tool's JSON schema, filled from the last user
  text: integers/numbers = the first number in it (clamped into the schema's
  bounds), strings = the first quoted phrase in it (else the text itself), enums =
  their first value, booleans ``true``, arrays ``[]``, objects filled recursively;
- ``response_format={"type": "json_object"}``: a JSON object valid against a JSON
  Schema found in the system prompt, else with the keys quoted in the user text;
  else the emulator's own JSON description;
- anything else: ``None`` (the emulator's default reply, describing what it saw).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from siliconvision.testing import ReceivedRequest, ScriptedReply

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


def _text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and _text_of(message).strip():
            return _text_of(message)
    return ""


def _quoted(text: str) -> list[str]:
    return [a or b for a, b in _QUOTED.findall(text)]


def _number(schema: Mapping[str, Any], text: str, integer: bool) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    found = _NUMBER.search(text)
    value: float = float(found.group()) if found else 0.0
    if low is not None and value <= low:
        value = low + (1 if "exclusiveMinimum" in schema else 0)
    if high is not None and value >= high:
        value = high - (1 if "exclusiveMaximum" in schema else 0)
    return int(value) if integer else value


def value_for(schema: Mapping[str, Any], text: str, defs: Mapping[str, Any]) -> Any:
    """A value valid against ``schema``, taken from ``text`` where it can be."""
    if "$ref" in schema:
        return value_for(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), text, defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return value_for(options[0], text, defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return _number(schema, text, integer=True)
    if kind == "number":
        return _number(schema, text, integer=False)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object" or "properties" in schema:
        return object_for(schema, text, defs)
    quoted = _quoted(text)
    return quoted[0] if quoted else text.strip()[:200] or "ok"


def object_for(
    schema: Mapping[str, Any], text: str, defs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An object with every property of ``schema`` filled by :func:`value_for`."""
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    properties = schema.get("properties") or {}
    return {name: value_for(sub, text, defs) for name, sub in properties.items()}


def _schema_in(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            found, _ = decoder.raw_decode(text[start:])
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("properties"), dict):
            return found
    return None


def _tool_reply(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> ScriptedReply | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    forced = choice == "required" or isinstance(choice, dict)
    if not forced and any(m.get("role") == "tool" for m in messages):
        return None
    tool = tools[0]
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        tool = next(t for t in tools if t["function"]["name"] == wanted)
    function = tool["function"]
    arguments = object_for(function.get("parameters") or {}, _last_user_text(messages))
    return ScriptedReply(tool_calls=[{"name": function["name"], "arguments": arguments}])


def _json_reply(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> ScriptedReply | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_object":
        return None
    text = _last_user_text(messages)
    for message in messages:
        if message.get("role") == "system":
            schema = _schema_in(_text_of(message))
            if schema is not None:
                return ScriptedReply(content=json.dumps(object_for(schema, text)))
    keys = _quoted(text)
    if keys:
        return ScriptedReply(content=json.dumps({key: text.strip() for key in keys}))
    return None


def deterministic_model(request: ReceivedRequest) -> ScriptedReply | None:
    """The responder: see the module documentation."""
    body = request.body
    if not isinstance(body, dict):
        return None
    messages = body.get("messages") or []
    return _tool_reply(body, messages) or _json_reply(body, messages)
