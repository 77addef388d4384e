"""The check and repair of links the frontend runs on every workflow it loads.

With ``Comfy.Validation.Workflows`` on (the default), ``app.loadGraphData`` first validates the file
against the workflow schema (src/platform/workflow/validation/schemas/workflowSchema.ts, zod 3), then
runs ``fixBadLinks`` (src/utils/linkFixer.ts) on the validated copy (comfyui-frontend-package 1.35.9):

- a target input that names a link its origin output does not list gets the link added to the origin;
- an origin output that lists a link whose target slot holds another link (or whose target node is
  gone) loses it;
- links that neither end references are deleted.

Only the root graph is repaired, and input ``link`` fields are never changed (the fixer records such
patches but does not apply them, and throws when it later notices the mismatch). When the schema
rejects the file or the fixer throws, the frontend carries on with the file as it was, unrepaired.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .model import key

# ----------------------------------------------------------------------------------------------------
# JavaScript semantics the fixer relies on


class _Undefined:
    """A missing property (``undefined``), as opposed to JSON ``null`` (``None``)."""

    def __repr__(self) -> str:
        return "undefined"


_UNDEF: Any = _Undefined()


class _FixerError(Exception):
    """Where the frontend's fixer throws (a TypeError or its own consistency error)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strict_eq(a: Any, b: Any) -> bool:
    """``a === b`` for JSON values."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return type(a) is type(b) and a == b


_JS_NUMBER = re.compile(r"[+-]?(?:Infinity|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)", re.ASCII)


def _to_number(value: Any) -> float:
    """``Number(value)`` for the primitives node ids can be."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip(" \t\n\r\v\f\u00a0\ufeff")
        if not text:
            return 0.0
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return float(int(text[2:], 16))
        if re.fullmatch(r"0[oO][0-7]+", text):
            return float(int(text[2:], 8))
        if re.fullmatch(r"0[bB][01]+", text):
            return float(int(text[2:], 2))
        if _JS_NUMBER.fullmatch(text):
            return float(text.replace("Infinity", "inf"))
    return math.nan


def _at(items: Any, index: Any) -> Any:
    """``items?.[index]``: undefined for a missing array, a missing element or a non-index."""
    if (
        not isinstance(items, list)
        or not _is_number(index)
        or not math.isfinite(index)
        or index != int(index)
    ):
        return _UNDEF
    position = int(index)
    return items[position] if 0 <= position < len(items) else _UNDEF


def _prop(obj: Any, name: str) -> Any:
    """``obj?.name`` on a parsed JSON value."""
    return obj.get(name, _UNDEF) if isinstance(obj, dict) else _UNDEF


def _truthy(value: Any) -> bool:
    if value is None or value is _UNDEF or value is False:
        return False
    if _is_number(value):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


# ----------------------------------------------------------------------------------------------------
# Schema validation (the zod schema, reduced to what it accepts and how it coerces)


class _Invalid(Exception):
    """The value does not match the schema."""


_MISSING: Any = _UNDEF
_Schema = Callable[[Any], Any]


def _number(value: Any) -> Any:
    if not _is_number(value) or (isinstance(value, float) and math.isnan(value)):
        raise _Invalid
    return value


def _int(value: Any) -> Any:
    _number(value)
    if isinstance(value, float) and not value.is_integer():
        raise _Invalid
    return value


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Invalid
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _Invalid
    return value


def _any(value: Any) -> Any:
    if value is _MISSING:
        raise _Invalid
    return value


def _literal(expected: Any) -> _Schema:
    def parse(value: Any) -> Any:
        if not _strict_eq(value, expected) or isinstance(value, bool) != isinstance(expected, bool):
            raise _Invalid
        return value

    return parse


def _enum(*choices: str) -> _Schema:
    def parse(value: Any) -> Any:
        if value not in choices or not isinstance(value, str):
            raise _Invalid
        return value

    return parse


def _optional(schema: _Schema) -> _Schema:
    return lambda value: value if value is _MISSING else schema(value)


def _nullable(schema: _Schema) -> _Schema:
    return lambda value: None if value is None else schema(value)


def _array(item: _Schema) -> _Schema:
    def parse(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Invalid
        return [item(element) for element in value]

    return parse


def _tuple(*items: _Schema) -> _Schema:
    def parse(value: Any) -> Any:
        if not isinstance(value, list) or len(value) != len(items):
            raise _Invalid
        return [schema(element) for schema, element in zip(items, value, strict=True)]

    return parse


def _union(*options: _Schema) -> _Schema:
    def parse(value: Any) -> Any:
        for option in options:
            try:
                return option(value)
            except _Invalid:
                continue
        raise _Invalid

    return parse


def _object(shape: dict[str, _Schema], *, passthrough: bool = False) -> _Schema:
    """``z.object``: listed keys are parsed (missing ones stay missing), others kept or stripped."""

    def parse(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid
        out: dict[str, Any] = {}
        for name, schema in shape.items():
            parsed = schema(value.get(name, _MISSING))
            if parsed is not _MISSING:
                out[name] = parsed
        if passthrough:
            for name, item in value.items():
                if name not in shape:
                    out[name] = item
        return out

    return parse


def _lazy(get: Callable[[], _Schema]) -> _Schema:
    return lambda value: get()(value)


def _regex(pattern: str, flags: int = 0) -> _Schema:
    compiled = re.compile(pattern, flags | re.ASCII)

    def parse(value: Any) -> Any:
        if not isinstance(value, str) or compiled.search(value) is None:
            raise _Invalid
        return value

    return parse


def _js_length(text: str) -> int:
    """``String.length``: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _js_parse_int(text: str) -> float:
    """``parseInt(text)``: leading whitespace, a sign, ``0x`` for hex, then digits; NaN if none."""
    stripped = text.lstrip(" \t\n\r\v\f\u00a0\ufeff\u2028\u2029")
    sign = -1 if stripped.startswith("-") else 1
    body = stripped[1:] if stripped[:1] in ("+", "-") else stripped
    base, pattern = (16, r"[0-9a-fA-F]+") if body[:2] in ("0x", "0X") else (10, r"[0-9]+")
    digits = re.match(pattern, body[2:] if base == 16 else body)
    if digits is None:
        return math.nan
    return sign * int(digits.group(0), base)


def _slot_index(value: Any) -> Any:
    """``zSlotIndex``: an integer, or a string read with parseInt."""
    if isinstance(value, str):
        number = _js_parse_int(value)
        if isinstance(number, float) and math.isnan(number):
            raise _Invalid
        return number
    return _int(value)


_UUID = _regex(
    r"^[0-9a-fA-F]{8}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{12}\Z", re.I
)
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})


def _url(value: Any) -> Any:
    """``z.string().url()`` (``new URL(value)`` must not throw), approximated: a scheme, and for the
    web schemes a host name without forbidden characters and a valid port."""
    _string(value)
    text = re.sub(r"[\t\n\r]", "", value.strip("".join(chr(c) for c in range(0x21))))
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)\Z", text, re.S)
    if match is None:
        raise _Invalid
    if match.group(1).lower() not in _SPECIAL_SCHEMES:
        return value
    authority = re.split(r"[/\\?#]", match.group(2).lstrip("/\\"), maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    port = ""
    if not host.startswith("[") and ":" in host:
        host, port = host.split(":", 1)
    if not host or (re.search(r"[\x00 #%/:<>?@\[\\\]^|]", host) and not host.startswith("[")):
        raise _Invalid
    if port and (not port.isascii() or not port.isdigit() or int(port) > 65535):
        raise _Invalid
    return value


def _build_schemas() -> dict[str, _Schema]:
    node_id = _union(_int, _string)
    data_type = _union(_string, _array(_string), _number)
    vector2 = _union(
        lambda v: (lambda o: [o["0"], o["1"]])(_object({"0": _number, "1": _number}, passthrough=True)(v)),
        _tuple(_number, _number),
    )
    model_file = _object(
        {
            "name": _string,
            "url": _url,
            "hash": _optional(_string),
            "hash_type": _optional(_string),
            "directory": _string,
        }
    )
    graph_state = _object(
        {"lastGroupId": _number, "lastNodeId": _number, "lastLinkId": _number, "lastRerouteId": _number},
        passthrough=True,
    )
    link_array = _tuple(_number, node_id, _slot_index, node_id, _slot_index, data_type)
    link_extension = _object({"id": _number, "parentId": _number}, passthrough=True)
    link_object = _object(
        {
            "id": _number,
            "origin_id": node_id,
            "origin_slot": _slot_index,
            "target_id": node_id,
            "target_slot": _slot_index,
            "type": data_type,
            "parentId": _optional(_number),
        },
        passthrough=True,
    )
    reroute = _object(
        {
            "id": _number,
            "parentId": _optional(_number),
            "pos": vector2,
            "linkIds": _optional(_nullable(_array(_number))),
            "floating": _optional(_object({"slotType": _enum("input", "output")})),
        },
        passthrough=True,
    )
    input_shape: dict[str, _Schema] = {
        "name": _string,
        "type": data_type,
        "link": _optional(_nullable(_number)),
        "slot_index": _optional(_slot_index),
    }
    node_input = _object(input_shape, passthrough=True)
    node_output = _object(
        {
            "name": _string,
            "type": data_type,
            "links": _optional(_nullable(_array(_number))),
            "slot_index": _optional(_slot_index),
        },
        passthrough=True,
    )
    flags = _object(
        {
            name: _optional(_boolean)
            for name in ("collapsed", "pinned", "allow_interaction", "horizontal", "skip_repeated_outputs")
        },
        passthrough=True,
    )
    repo_like_id = _refine(
        _regex(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?\Z"),
        lambda v: 1 <= _js_length(v) <= 100 and not re.search(r"^[_\-.]|[_\-.]\Z", v),
    )
    github_username = _refine(
        _regex(r"^(?!-)(?!.*--)[a-zA-Z0-9-]+(?<!-)\Z"), lambda v: 1 <= _js_length(v) <= 39
    )

    def aux_id(value: Any) -> Any:
        _regex(r"^[^/]+/[^/]+\Z")(value)
        username, repo = value.split("/")
        github_username(username)
        repo_like_id(repo)
        return value

    semver = _regex(
        r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([\da-z-]+(?:\.[\da-z-]+)*))?"
        r"(?:\+([\da-z-]+(?:\.[\da-z-]+)*))?\Z"
    )
    git_hash = _regex(r"^[0-9a-f]{4,40}\Z", re.I)
    version = _union(
        lambda v: _union(semver, git_hash)(re.sub(r"^v", "", _string(v))),
        _literal("unknown"),
    )
    properties = _object(
        {
            "Node name for S&R": _optional(_string),
            "cnr_id": _optional(repo_like_id),
            "aux_id": _optional(aux_id),
            "ver": _optional(version),
            "models": _optional(_array(model_file)),
        },
        passthrough=True,
    )
    widgets_values = _union(_array(_any), _object({}, passthrough=True))
    node_common: dict[str, _Schema] = {
        "id": node_id,
        "type": _string,
        "pos": vector2,
        "size": vector2,
        "flags": flags,
        "order": _number,
        "mode": _number,
    }
    node = _object(
        {
            **node_common,
            "inputs": _optional(_array(node_input)),
            "outputs": _optional(_array(node_output)),
            "properties": properties,
            "widgets_values": _optional(widgets_values),
            "color": _optional(_string),
            "bgcolor": _optional(_string),
        },
        passthrough=True,
    )
    subgraph_io = _object(
        {**input_shape, "id": _UUID, "type": _string, "linkIds": _optional(_array(_number))}, passthrough=True
    )
    subgraph_instance = _object(
        {
            **node_common,
            "type": _UUID,
            "inputs": _optional(_array(subgraph_io)),
            "outputs": _optional(_array(subgraph_io)),
            "widgets_values": _optional(widgets_values),
            "color": _optional(_string),
            "bgcolor": _optional(_string),
        },
        passthrough=True,
    )
    group = _object(
        {
            "id": _optional(_number),
            "title": _string,
            "bounding": _tuple(_number, _number, _number, _number),
            "color": _optional(_string),
            "font_size": _optional(_number),
            "locked": _optional(_boolean),
        },
        passthrough=True,
    )
    extra = _object(
        {
            "ds": _optional(_object({"scale": _number, "offset": vector2}, passthrough=True)),
            "frontendVersion": _optional(_string),
            "linkExtensions": _optional(_array(link_extension)),
            "reroutes": _optional(_array(reroute)),
            "workflowRendererVersion": _optional(_enum("LG", "Vue")),
        },
        passthrough=True,
    )
    config = _optional(
        _nullable(
            _object(
                {"links_ontop": _optional(_boolean), "align_to_grid": _optional(_boolean)}, passthrough=True
            )
        )
    )
    base: dict[str, _Schema] = {
        "id": _optional(_UUID),
        "revision": _optional(_number),
        "config": config,
        "subgraphs": _optional(_array(subgraph_instance)),
    }
    subgraphs = _object({"subgraphs": _lazy(lambda: _array(subgraph_definition))})
    workflow_04 = _object(
        {
            **base,
            "last_node_id": node_id,
            "last_link_id": _number,
            "nodes": _array(node),
            "links": _array(link_array),
            "floatingLinks": _optional(_array(link_object)),
            "groups": _optional(_array(group)),
            "extra": _optional(_nullable(extra)),
            "version": _number,
            "models": _optional(_array(model_file)),
            "definitions": _optional(subgraphs),
        },
        passthrough=True,
    )
    workflow_1_shape: dict[str, _Schema] = {
        **base,
        "version": _literal(1),
        "state": graph_state,
        "groups": _optional(_array(group)),
        "nodes": _array(node),
        "links": _optional(_array(link_object)),
        "floatingLinks": _optional(_array(link_object)),
        "reroutes": _optional(_array(reroute)),
        "extra": _optional(_nullable(extra)),
        "models": _optional(_array(model_file)),
        "definitions": _optional(subgraphs),
    }
    io_node = _object(
        {
            "id": node_id,
            "bounding": _tuple(_number, _number, _number, _number),
            "pinned": _optional(_boolean),
        }
    )
    subgraph_definition = _object(
        {
            **workflow_1_shape,
            "id": _UUID,
            "revision": _number,
            "name": _string,
            "inputNode": io_node,
            "outputNode": io_node,
            "inputs": _optional(_array(subgraph_io)),
            "outputs": _optional(_array(subgraph_io)),
            "widgets": _optional(_array(_object({"id": _string, "name": _string}))),
        },
        passthrough=True,
    )
    return {"0.4": workflow_04, "1": _object(workflow_1_shape, passthrough=True)}


def _refine(schema: _Schema, check: Callable[[Any], bool]) -> _Schema:
    def parse(value: Any) -> Any:
        parsed = schema(value)
        if not check(parsed):
            raise _Invalid
        return parsed

    return parse


_SCHEMAS: dict[str, _Schema] | None = None


def validate_workflow(data: Any) -> dict[str, Any] | None:
    """``validateComfyWorkflow``: the schema's copy of ``data`` (string slot indexes read as integers,
    ``{0: x, 1: y}`` points made pairs, unknown keys of closed objects dropped), or None if it does
    not match. Version 1 files use the version 1 schema; any other version, the 0.4 schema."""
    global _SCHEMAS
    if _SCHEMAS is None:
        _SCHEMAS = _build_schemas()
    if not isinstance(data, dict) or not _is_number(data.get("version")) or math.isnan(data["version"]):
        return None
    schema = _SCHEMAS["1" if data["version"] == 1 else "0.4"]
    try:
        parsed: dict[str, Any] = schema(data)
    except _Invalid:
        return None
    return parsed


# ----------------------------------------------------------------------------------------------------
# fixBadLinks


class _LinkFixer:
    """One run of ``fixBadLinks`` over a validated workflow's root nodes and links."""

    def __init__(self, graph: dict[str, Any], *, fix: bool):
        self.graph = graph
        self.fix = fix
        #: ``patchedNodeSlots``: node id -> {"inputs": {slot: link id | None},
        #: "outputs": {slot: {"links": [...], "changes": {link id: "ADD" | "REMOVE"}}}}
        self.patched: dict[str, dict[str, dict[str, Any]]] = {}
        self.patched_nodes = 0
        self.deleted: list[Any] = []
        # ``nodes.find(n => n.id == id)``, indexed: exact string ids, number ids, and string ids by the
        # number they read as (JavaScript's == compares a string and a number as numbers).
        self._by_string: dict[str, tuple[int, Any]] = {}
        self._by_number: dict[float, tuple[int, Any]] = {}
        self._by_string_number: dict[float, tuple[int, Any]] = {}
        self._by_null: tuple[int, Any] | None = None
        for position, node in enumerate(graph.get("nodes") or ()):
            node_id = _prop(node, "id")
            entry = (position, node)
            if isinstance(node_id, str):
                self._by_string.setdefault(node_id, entry)
                number = _to_number(node_id)
                if not math.isnan(number):
                    self._by_string_number.setdefault(number, entry)
            elif _is_number(node_id) or isinstance(node_id, bool):
                self._by_number.setdefault(_to_number(node_id), entry)
            elif (node_id is None or node_id is _UNDEF) and self._by_null is None:
                self._by_null = entry

    def node_by_id(self, node_id: Any) -> dict[str, Any] | None:
        """``getNodeById`` on a serialised graph: the first node whose id is loosely equal."""
        found: list[tuple[int, Any] | None]
        if isinstance(node_id, str):
            number = _to_number(node_id)
            found = [
                self._by_string.get(node_id),
                None if math.isnan(number) else self._by_number.get(number),
            ]
        elif _is_number(node_id) or isinstance(node_id, bool):
            number = _to_number(node_id)
            found = [self._by_number.get(number), self._by_string_number.get(number)]
        elif node_id is None or node_id is _UNDEF:
            found = [self._by_null]
        else:
            found = []
        hits = [entry for entry in found if entry is not None]
        if not hits:
            return None
        node = min(hits, key=lambda entry: entry[0])[1]
        return node if isinstance(node, dict) else None

    def patch(self, node: dict[str, Any], is_input: bool, slot: Any, link_id: Any, op: str) -> bool:
        """``patchNodeSlot``."""
        patched = self.patched.setdefault(key(node.get("id")), {})
        slot_key = key(slot)
        if is_input:
            inputs = patched.setdefault("inputs", {})
            if slot_key in inputs:
                return False
            # The frontend records the input patch but never writes it to the node (commented out).
            inputs[slot_key] = None if op == "REMOVE" else link_id
        else:
            outputs = patched.setdefault("outputs", {})
            if slot_key not in outputs:
                current = _prop(_at(node.get("outputs"), slot), "links")
                outputs[slot_key] = {"links": list(current) if _truthy(current) else [], "changes": {}}
            entry = outputs[slot_key]
            if key(link_id) in entry["changes"]:
                # The "already set" log line reads patched.inputs[slot]: a TypeError without inputs.
                if "inputs" not in patched:
                    raise _FixerError("Cannot read properties of undefined")
                return False
            entry["changes"][key(link_id)] = op
            links: list[Any] = entry["links"]
            index = next((i for i, x in enumerate(links) if _strict_eq(x, link_id)), -1)
            if op == "ADD":
                if index != -1:
                    return False
                links.append(link_id)
                if self.fix:
                    self._add_output_link(node, slot, link_id)
            else:
                if index == -1:
                    return False
                del links[index]
                if self.fix:
                    del node["outputs"][int(slot)]["links"][index]
        self.patched_nodes += 1
        return True

    @staticmethod
    def _add_output_link(node: dict[str, Any], slot: Any, link_id: Any) -> None:
        if not _truthy(node.get("outputs")):
            node["outputs"] = []
        outputs = node["outputs"]
        position = int(slot)
        while len(outputs) <= position:
            outputs.append(None)  # a hole in a sparse JavaScript array
        if not _truthy(outputs[position]):
            outputs[position] = {}
        output = outputs[position]
        if not _truthy(output.get("links")):
            output["links"] = []
        output["links"].append(link_id)

    def has_link(self, node: dict[str, Any], is_input: bool, slot: Any, link_id: Any) -> bool:
        """``nodeHasLinkId``: the patches are canonical; when fixing, the node must agree with them."""
        patched = self.patched.get(key(node.get("id")), {})
        if is_input:
            actual = _strict_eq(_prop(_at(node.get("inputs"), slot), "link"), link_id)
            if "inputs" in patched:
                wanted = _strict_eq(patched["inputs"].get(key(slot), _UNDEF), link_id)
                if self.fix and actual != wanted:
                    raise _FixerError("Error. Expected node to match patched data.")
                return wanted
            return actual
        links = _prop(_at(node.get("outputs"), slot), "links")
        actual_any: bool | None = (
            any(_strict_eq(x, link_id) for x in links) if isinstance(links, list) else None
        )
        entry = patched.get("outputs", {}).get(key(slot))
        if entry is not None and entry["changes"].get(key(link_id)):
            wanted = any(_strict_eq(x, link_id) for x in entry["links"])
            if self.fix and actual_any is not wanted:
                raise _FixerError("Error. Expected node to match patched data.")
            return wanted
        return bool(actual_any)

    def has_any_input_link(self, node: dict[str, Any], slot: Any) -> bool:
        """``nodeHasAnyLink`` for an input."""
        link = _prop(_at(node.get("inputs"), slot), "link")
        actual = link is not None and link is not _UNDEF
        patched = self.patched.get(key(node.get("id")), {})
        if "inputs" in patched:
            value = patched["inputs"].get(key(slot))
            wanted = value is not None
            if self.fix and actual != wanted:
                raise _FixerError("Error. Expected node to match patched data.")
            return wanted
        return actual

    def run(self) -> None:
        links = self.graph.get("links", _UNDEF)
        if not isinstance(links, list):
            # Object.values(undefined) throws; the schema lets no other non-array through.
            raise _FixerError("links is not an array")
        ordered = [_link_view(raw) for raw in reversed(links) if _truthy(raw)]
        for link in ordered:
            self._check(link)
        for link in ordered:
            origin = self.node_by_id(link["origin_id"])
            target = self.node_by_id(link["target_id"])
            if (origin is None or not self.has_link(origin, False, link["origin_slot"], link["id"])) and (
                target is None or not self.has_link(target, True, link["target_slot"], link["id"])
            ):
                self.deleted.append(link["id"])
        if self.fix:
            for link_id in reversed(self.deleted):
                index = next((i for i, raw in enumerate(links) if _link_has_id(raw, link_id)), -1)
                if index == -1:
                    if links:
                        links.pop()  # splice(-1, 1) removes the last link
                else:
                    del links[index]
            self.graph["links"] = [raw for raw in links if _truthy(raw)]

    def _check(self, link: dict[str, Any]) -> None:
        """The first pass over one link: make its two ends agree where one of them claims it."""
        link_id, origin_slot, target_slot = link["id"], link["origin_slot"], link["target_slot"]
        origin = self.node_by_id(link["origin_id"])
        target = self.node_by_id(link["target_id"])
        if origin is None or target is None:
            if origin is None and target is not None:
                if self.has_link(target, True, target_slot, link_id):
                    self.patch(target, True, target_slot, -1, "REMOVE")
            elif origin is not None and self.has_link(origin, False, origin_slot, link_id):
                self.patch(origin, False, origin_slot, link_id, "REMOVE")
            return
        if not (
            self.has_link(target, True, target_slot, link_id)
            or self.has_link(origin, False, origin_slot, link_id)
        ):
            return
        if not self.has_link(origin, False, origin_slot, link_id):
            self.patch(origin, False, origin_slot, link_id, "ADD")
        elif not self.has_link(target, True, target_slot, link_id):
            if not self.has_any_input_link(target, target_slot):
                if not self.patch(target, True, target_slot, link_id, "ADD"):
                    self.patch(origin, False, origin_slot, link_id, "REMOVE")
            else:
                self.patch(origin, False, origin_slot, link_id, "REMOVE")


def _link_view(raw: Any) -> dict[str, Any]:
    """A link as the fixer reads it: an object link as is, an array link by position."""
    if isinstance(raw, dict) and raw.get("origin_slot") is not None:
        return {
            name: raw.get(name, _UNDEF)
            for name in ("id", "origin_id", "origin_slot", "target_id", "target_slot")
        }
    names = ("id", "origin_id", "origin_slot", "target_id", "target_slot")
    return {
        name: _at(raw, index) if isinstance(raw, list) else _prop(raw, str(index))
        for index, name in enumerate(names)
    }


def _link_has_id(raw: Any, link_id: Any) -> bool:
    """``l && (l[0] === id || l.id === id)``."""
    if isinstance(raw, list):
        return bool(raw) and _strict_eq(raw[0], link_id)
    if isinstance(raw, dict):
        return _strict_eq(raw.get("0", _UNDEF), link_id) or _strict_eq(raw.get("id", _UNDEF), link_id)
    return False


def fix_bad_links(data: dict[str, Any]) -> dict[str, Any]:
    """What ``validateWorkflow`` hands back to ``loadGraphData``: the validated and repaired copy, or
    ``data`` itself when the schema rejects it or the fixer throws."""
    validated = validate_workflow(data)
    if validated is None:
        return data
    try:
        fixer = _LinkFixer(validated, fix=True)
        fixer.run()
        if fixer.patched_nodes or fixer.deleted:
            # Not silent: it runs again without fixing, to report what is left (and may throw).
            _LinkFixer(validated, fix=False).run()
    except _FixerError:
        return data
    return validated
