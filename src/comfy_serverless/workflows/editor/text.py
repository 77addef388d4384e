"""Text the frontend rewrites while it builds a prompt.

- ``%date:yyyy-MM-dd%`` and ``%Node title.widget%`` in a save node's ``filename_prefix``
  (src/utils/searchAndReplace.ts, ``formatDate`` in packages/shared-frontend-utils/src/formatUtil.ts);
- dynamic prompts: ``{red|green|blue}`` picks one choice at random, ``//`` and ``/* */`` comments are
  removed (src/extensions/core/dynamicPrompts.ts, ``processDynamicPrompt``).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loader import Loader
    from .model import Graph

_REPLACEMENT = re.compile(r"%([^%]+)%")
_DATE_PART = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")
_UNSAFE_IN_NAMES = re.compile(r'[/?<>\\:*|"\x00-\x1f\x7f]')
# JavaScript's "." stops at every line terminator, not only "\n".
_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//[^\n\r\u2028\u2029]*")
_ESCAPED = re.compile(r"\\([{}|])")


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for the values widgets hold."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else "+"
            return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
        return text
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def js_key(value: Any) -> str:
    """A value used as a JavaScript object key (5, 5.0 and "5" are the same key)."""
    return value if isinstance(value, str) else js_string(value)


def format_date(text: str, now: dt.datetime) -> str:
    def part(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "yy":
            return str(now.year)[2:]
        if token == "yyyy":
            return str(now.year)
        number = {"d": now.day, "M": now.month, "h": now.hour, "m": now.minute, "s": now.second}.get(token[0])
        if number is None:
            return token
        return str(number).rjust(len(token), "0")

    return _DATE_PART.sub(part, text)


def apply_text_replacements(loader: Loader, value: Any, graph: Graph | None = None) -> Any:
    """``applyTextReplacements``: fill ``%date:...%`` and ``%Title.widget%`` patterns, looking nodes up in
    ``graph`` and the subgraphs its instances use (save nodes search the whole workflow; a primitive
    only the graph it sits in)."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        text = match.group(1)
        split = text.split(".")
        if len(split) != 2:
            if split[0].startswith("date:"):
                return format_date(split[0][5:], loader.now or dt.datetime.now())
            return match.group(0)
        candidates = list((graph or loader.root).walk())
        nodes = [node for node in candidates if node.properties.get("Node name for S&R") == split[0]]
        if not nodes:
            nodes = [node for node in candidates if node.title == split[0]]
        if not nodes:
            return match.group(0)
        widget = nodes[0].widget(split[1])
        if widget is None:
            return match.group(0)
        shown = "" if widget.value is None else js_string(widget.value)
        return _UNSAFE_IN_NAMES.sub("_", shown)

    return _REPLACEMENT.sub(replace, value)


def process_dynamic_prompt(text: str, rng: random.Random) -> str:
    """``processDynamicPrompt``: strip comments, resolve ``{a|b}`` choices (nested too), keep ``\\{``."""
    source = _COMMENTS.sub("", text)
    position = 0

    def escape() -> str:
        nonlocal position
        following = source[position] if position < len(source) else "undefined"
        position += 1
        return "\\" + following

    def choice_block() -> str:
        nonlocal position
        options: list[str] = []
        choice = ""
        depth = 0
        while position < len(source):
            char = source[position]
            position += 1
            if char == "\\":
                choice += escape()
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if not depth:
                    break
                depth -= 1
            elif char == "|" and not depth:
                options.append(choice)
                choice = ""
                continue
            choice += char
        options.append(choice)
        chosen = options[math.floor(rng.random() * len(options))]
        return process_dynamic_prompt(chosen, rng)

    result = ""
    while position < len(source):
        char = source[position]
        position += 1
        if char == "\\":
            result += escape()
        elif char == "{":
            result += choice_block()
        else:
            result += char
    return _ESCAPED.sub(r"\1", result)
