"""Every REST request against Discord's published OpenAPI spec (tests/discord_double/spec/).

:class:`SpecValidator` checks a request the way Discord would before running it: the
route and method must exist in the spec (path templates whose ``{..._id}`` parameters
are snowflakes), required query parameters must be there and known ones must fit their
schema, and the JSON body (or a multipart request's ``payload_json``) must validate
against the operation's request body schema: lengths (``custom_id`` ≤ 100, content ≤
2000, labels, ...), item counts (embeds, components, choices), enums and types.
Unknown body fields pass, as on Discord (the spec's objects are open).

The spec is OpenAPI 3.1 (JSON Schema 2020-12), validated with ``jsonschema`` and a
``referencing`` registry holding the whole document. Three relaxations and one
tightening (``QUIRKS``) make it say what Discord accepts, as the spec's own README
describes ("follow the docs, not the spec"):

* ``SnowflakeType`` also accepts a non-negative JSON integer: discord.py sends some ids
  as numbers (``recipient_id``, ``allowed_mentions.users``/``roles``, ...), which Discord
  takes.
* ``oneOf`` is checked as ``anyOf``: the README says both mean "exactly one of these
  formats", and many branches overlap (all their fields optional), so a strict ``oneOf``
  would reject payloads Discord accepts.
* ``integer`` accepts strings that parse as integers ("Our API accepts strings for int
  fields if they are parseable as ints").
* A channel message's ``content`` (create and edit) is at most 2000 characters, as the
  docs say for bots; the spec says 4000 (the limit for Nitro users).

``spec_validator()`` builds the validator once per process; schema validators are
compiled lazily per operation and cached.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).parent / "spec"
SPEC_PATH = SPEC_DIR / "openapi.json"
SPEC_URI = "urn:discord-api-spec:openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

QUIRKS = (
    "SnowflakeType also accepts non-negative JSON integers",
    "oneOf is checked as anyOf (the spec README: unions mean one format of the list)",
    "integer accepts int-parseable strings (the spec README)",
    "channel message content <= 2000 (the docs; the spec says 4000)",
)
BOT_CONTENT_LIMIT = 2000
"""Message content limit for bots (docs); the spec's message schemas say 4000."""
_BOT_MESSAGE_SCHEMAS = ("MessageCreateRequest", "MessageEditRequestPartial")

_INT_STRING = re.compile(r"^-?[0-9]+$")


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    if isinstance(instance, float):
        return instance.is_integer()
    return isinstance(instance, str) and bool(_INT_STRING.match(instance))


_LenientValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@dataclass(frozen=True)
class Violation:
    """One way a request breaks the spec."""

    method: str
    path: str
    kind: str
    """"route" (no such path), "method", "path" (a bad path parameter), "query", "body"."""
    message: str
    route: str | None = None
    """The spec's path template, e.g. ``/channels/{channel_id}/messages``."""
    field: str = ""
    """Where in the body/query: ``components.0.components.0.custom_id``."""
    code: str = "BASE_TYPE_INVALID"
    """Discord's form-error code (``BASE_TYPE_MAX_LENGTH``, ``BASE_TYPE_REQUIRED``, ...)."""

    def __str__(self) -> str:
        route = f" (spec: {self.method} {self.route})" if self.route else ""
        where = f" {self.field}:" if self.field else ""
        return f"{self.method} {self.path}{route}:{where} {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "route": self.route,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        }


@dataclass
class _Template:
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    path_params: dict[str, str]
    """name -> JSON pointer of its schema."""
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_parameters: list[dict[str, Any]] = field(default_factory=list)
    pointer: str = ""


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def relax(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with QUIRKS applied."""
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    original = schemas["SnowflakeType"]
    schemas["SnowflakeType"] = {"anyOf": [original, {"type": "integer", "minimum": 0}]}
    for name in _BOT_MESSAGE_SCHEMAS:
        content = schemas[name]["properties"]["content"]
        content["maxLength"] = min(content.get("maxLength", BOT_CONTENT_LIMIT), BOT_CONTENT_LIMIT)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "oneOf" in node:
                node.setdefault("anyOf", node.pop("oneOf"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return spec


class SpecValidator:
    """Checks (method, path, query, body) against an OpenAPI 3.1 document."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = relax(spec)
        resource = DRAFT202012.create_resource(self.spec)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[tuple[str, bool], Any] = {}
        self.templates: list[_Template] = []
        for template, item in self.spec["paths"].items():
            self.templates.append(self._template(template, item))
        # The most literal template wins: /users/@me before /users/{user_id}.
        self.templates.sort(key=lambda t: -t.literal_segments)
        self.checked = 0
        """How many requests :meth:`check` has seen (for reports)."""
        self.violated = 0
        """How many of them broke the spec."""
        self.routes_seen: Counter[tuple[str, str]] = Counter()
        """(method, spec template) -> requests checked on it."""

    def _template(self, template: str, item: dict[str, Any]) -> _Template:
        pointer = "/paths/" + _escape(template)
        shared = list(item.get("parameters", []))
        params: dict[str, str] = {}
        for index, parameter in enumerate(shared):
            if parameter.get("in") == "path":
                params[parameter["name"]] = f"{pointer}/parameters/{index}/schema"
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        segments = [s for s in template.split("/") if s]
        found = _Template(
            template=template,
            pattern=re.compile(f"^{regex}$"),
            literal_segments=sum(1 for s in segments if not s.startswith("{")),
            path_params=params,
            shared_parameters=shared,
            pointer=pointer,
        )
        for method in METHODS:
            if method in item:
                found.operations[method.upper()] = item[method]
        return found

    def validator(self, pointer: str, *, strict: bool = False) -> Any:
        """A (cached) validator for the schema at ``pointer`` in the spec; ``strict``
        keeps JSON Schema's own ``integer`` (query strings are converted beforehand)."""
        cached = self._validators.get((pointer, strict))
        if cached is None:
            ref = SPEC_URI + "#" + quote(pointer, safe="/~@:{}")
            cls = Draft202012Validator if strict else _LenientValidator
            cached = cls({"$ref": ref}, registry=self.registry)
            self._validators[(pointer, strict)] = cached
        return cached

    # -- checking --------------------------------------------------------------------

    def routes(self) -> Iterable[tuple[str, str]]:
        for template in self.templates:
            for method in template.operations:
                yield method, template.template

    def resolve(self, method: str, path: str) -> tuple[_Template | None, list[Violation]]:
        """The spec template serving ``path`` (path parameters valid), or violations."""
        near: _Template | None = None
        for template in self.templates:
            found = template.pattern.match(path)
            if found is None:
                continue
            bad = [
                name
                for name, value in found.groupdict().items()
                if name in template.path_params
                and not self.validator(template.path_params[name]).is_valid(value)
            ]
            if bad:
                near = near or template
                continue
            return template, []
        if near is not None:
            return None, [
                Violation(
                    method,
                    path,
                    "path",
                    f"no route: path parameters do not fit {near.template}",
                    route=near.template,
                    code="NOT_FOUND",
                )
            ]
        return None, [Violation(method, path, "route", "no such route in the spec", code="0")]

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        multipart: bool = False,
    ) -> list[Violation]:
        """Every way this request breaks the spec (empty when it is fine)."""
        found = self._check(method.upper(), path, query or {}, body, multipart)
        self.checked += 1
        self.violated += bool(found)
        return found

    def _check(
        self, method: str, path: str, query: Mapping[str, str], body: Any, multipart: bool
    ) -> list[Violation]:
        template, violations = self.resolve(method, path)
        if template is None:
            return violations
        self.routes_seen[(method, template.template)] += 1
        operation = template.operations.get(method)
        if operation is None:
            allowed = ", ".join(template.operations)
            return [
                Violation(
                    method,
                    path,
                    "method",
                    f"method not allowed (the spec has {allowed})",
                    route=template.template,
                    code="0",
                )
            ]
        op_pointer = f"{template.pointer}/{method.lower()}"
        found = self._check_query(method, path, template, operation, op_pointer, query)
        found += self._check_body(method, path, template, operation, op_pointer, body, multipart)
        return found

    def _check_query(
        self,
        method: str,
        path: str,
        template: _Template,
        operation: dict[str, Any],
        op_pointer: str,
        query: Mapping[str, str],
    ) -> list[Violation]:
        found: list[Violation] = []
        parameters = [
            (f"{template.pointer}/parameters/{i}/schema", p)
            for i, p in enumerate(template.shared_parameters)
        ] + [
            (f"{op_pointer}/parameters/{i}/schema", p)
            for i, p in enumerate(operation.get("parameters", []))
        ]
        for pointer, parameter in parameters:
            if parameter.get("in") != "query":
                continue
            name = parameter["name"]
            if name not in query:
                if parameter.get("required"):
                    found.append(
                        Violation(
                            method,
                            path,
                            "query",
                            "This field is required",
                            route=template.template,
                            field=name,
                            code="BASE_TYPE_REQUIRED",
                        )
                    )
                continue
            validator = self.validator(pointer, strict=True)
            if not any(validator.is_valid(c) for c in _query_candidates(query[name])):
                error = best_match(validator.iter_errors(_query_candidates(query[name])[0]))
                found.append(
                    Violation(
                        method,
                        path,
                        "query",
                        _describe(error)[1] if error else "invalid",
                        route=template.template,
                        field=name,
                        code=_describe(error)[0] if error else "BASE_TYPE_INVALID",
                    )
                )
        return found

    def _check_body(
        self,
        method: str,
        path: str,
        template: _Template,
        operation: dict[str, Any],
        op_pointer: str,
        body: Any,
        multipart: bool,
    ) -> list[Violation]:
        request_body = operation.get("requestBody")
        if request_body is None:
            if body in (None, {}, b"", ""):
                return []
            return [
                Violation(
                    method,
                    path,
                    "body",
                    "the spec's operation takes no request body",
                    route=template.template,
                    code="BASE_TYPE_INVALID",
                )
            ]
        if body is None:
            if not request_body.get("required"):
                return []
            return [
                Violation(
                    method,
                    path,
                    "body",
                    "a request body is required",
                    route=template.template,
                    code="BASE_TYPE_REQUIRED",
                )
            ]
        content = request_body.get("content", {})
        media = "multipart/form-data" if multipart else "application/json"
        if media not in content:
            if multipart and "application/json" in content:
                media = "application/json"
            else:
                return [
                    Violation(
                        method,
                        path,
                        "body",
                        f"the spec's operation does not take {media} (only {', '.join(content)})",
                        route=template.template,
                        code="BASE_TYPE_INVALID",
                    )
                ]
        pointer = f"{op_pointer}/requestBody/content/{_escape(media)}/schema"
        validator = self.validator(pointer)
        found: list[Violation] = []
        for error in validator.iter_errors(body):
            leaf = _leaf(error)
            location, code, message = _locate(leaf)
            found.append(
                Violation(
                    method,
                    path,
                    "body",
                    message,
                    route=template.template,
                    field=".".join(str(p) for p in location),
                    code=code,
                )
            )
        return found


def _branch_score(errors: list[ValidationError]) -> tuple[bool, bool, int, int]:
    """How far a union branch is from fitting (lower is closer): a branch whose
    discriminator (``type: {enum: [2]}``) or whose own JSON type is wrong is the wrong
    branch; otherwise the one with the fewest, then deepest, errors."""
    wrong_kind = any(
        e.validator in ("enum", "const") and list(e.relative_path) == ["type"] for e in errors
    )
    wrong_type = any(e.validator == "type" and not e.relative_path for e in errors)
    depth = max((len(e.relative_path) for e in errors), default=0)
    return wrong_kind, wrong_type, len(errors), -depth


def _leaf(error: ValidationError) -> ValidationError:
    """The error to report: inside a union, the one from the branch that nearly fits."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        closest = min(branches.values(), key=_branch_score)
        if all(_branch_score(b)[0] for b in branches.values()):
            return error  # no branch has this kind: report the union itself
        return _leaf(min(closest, key=lambda e: -len(e.absolute_path)))
    return error


def _query_candidates(value: str) -> list[Any]:
    candidates: list[Any] = [value]
    if _INT_STRING.match(value):
        candidates.insert(0, int(value))
    lowered = value.lower()
    if lowered in ("true", "1"):
        candidates.append(True)
    if lowered in ("false", "0"):
        candidates.append(False)
    return candidates


def _describe(error: ValidationError) -> tuple[str, str]:
    """Discord's form-error code and message for a schema error."""
    keyword = error.validator
    limit = error.validator_value
    if keyword in ("maxLength", "maxItems"):
        return "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
    if keyword in ("minLength", "minItems"):
        return "BASE_TYPE_MIN_LENGTH", f"Must be {limit} or more in length."
    if keyword == "required":
        return "BASE_TYPE_REQUIRED", "This field is required"
    if keyword in ("enum", "const"):
        choices = limit if keyword == "enum" else [limit]
        return "BASE_TYPE_CHOICES", f"Value must be one of {tuple(choices)}."
    if keyword in ("maximum", "exclusiveMaximum"):
        return "NUMBER_TYPE_MAX", f"int value should be less than or equal to {limit}."
    if keyword in ("minimum", "exclusiveMinimum"):
        return "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {limit}."
    if keyword == "pattern":
        return "STRING_TYPE_REGEX", f"String value did not match validation regex {limit}."
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    return "BASE_TYPE_INVALID", message


def _locate(error: ValidationError) -> tuple[list[Any], str, str]:
    """(path to the offending field, code, message); a missing field's path ends in it."""
    location = list(error.absolute_path)
    code, message = _describe(error)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            location.append(missing[0])
    return location, code, message


def form_errors(violations: Iterable[Violation]) -> dict[str, Any]:
    """Discord's nested ``errors`` object for a 400 50035 Invalid Form Body."""
    errors: dict[str, Any] = {}
    for violation in violations:
        node = errors
        for part in violation.field.split(".") if violation.field else ["_body"]:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append(
            {"code": violation.code, "message": violation.message}
        )
    return errors


@functools.cache
def spec_validator() -> SpecValidator:
    """The process-wide validator for the vendored spec."""
    return SpecValidator(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
