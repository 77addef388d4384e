"""Values a job sets on a prompt: ``params`` by node id or title, and seeds drawn for ``"random"``.

A node is named by its id (``"3"``, or ``"92:3"`` inside a subgraph) or by its title: the editor's
title, which conversion keeps as ``_meta.title``, or ``_meta.title`` of an API-format file. Titles
survive re-exports, ids often do not; a title shared by several nodes is refused with their ids.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..errors import WorkflowError

#: Inputs that take a seed: ``"random"`` there draws a fresh one.
SEED_INPUTS = frozenset({"seed", "noise_seed"})
#: The range seeds are drawn from: the editor's own "randomize" range (2**50), which every sampler
#: accepts and JSON carries without loss.
SEED_RANGE = 1125899906842624
RANDOM = "random"


def shown(items: list[str], limit: int = 20) -> str:
    text = ", ".join(items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def title_of(node: Mapping[str, Any]) -> str | None:
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, Mapping) else None
    return title if isinstance(title, str) else None


def resolve_node(prompt: Mapping[str, Mapping[str, Any]], ref: str, field: str) -> str:
    """The id of the node ``ref`` names: an id, or a title that exactly one node has."""
    if ref in prompt:
        return ref
    matches = [node_id for node_id, node in prompt.items() if title_of(node) == ref]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise WorkflowError(
            f"{field}: {len(matches)} nodes are titled {ref!r} (ids {shown(matches)}); use a node id",
            details={"field": field, "title": ref, "node_ids": matches},
        )
    titles = sorted({t for node in prompt.values() if (t := title_of(node))})
    known = f"ids: {shown(list(prompt))}" + (
        f"; titles: {shown([repr(t) for t in titles])}" if titles else ""
    )
    raise WorkflowError(
        f"{field}: the workflow has no node with id or title {ref!r} ({known})",
        details={"field": field, "node": ref},
    )


def apply_params(
    prompt: dict[str, dict[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    known_inputs: Mapping[str, set[str]],
    *,
    field: str = "params",
) -> None:
    """Set each ``{node: {input: value}}``; a node or input the workflow does not have is refused by name.

    ``known_inputs`` lists, per class, inputs ComfyUI knows beyond those the workflow sets (optional
    inputs are often left out of saved workflows)."""
    for ref, values in params.items():
        where = f"{field}[{ref!r}]"
        node_id = resolve_node(prompt, ref, where)
        node = prompt[node_id]
        inputs = node.setdefault("inputs", {})
        class_type = str(node.get("class_type"))
        allowed = set(inputs) | known_inputs.get(class_type, set())
        for name, value in values.items():
            if name not in allowed:
                raise WorkflowError(
                    f"{where}[{name!r}]: node {node_id} ({class_type}) has no input {name!r} "
                    f"(its inputs: {shown(sorted(allowed))})",
                    details={"field": f"{field}.{ref}.{name}", "node_id": node_id, "input": name},
                )
            inputs[name] = value


def draw_random_seeds(prompt: dict[str, dict[str, Any]], rng: random.Random | None = None) -> None:
    """Replace ``"random"`` in every seed input with a freshly drawn seed."""
    draw = rng or random.SystemRandom()
    for node in prompt.values():
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        for name in SEED_INPUTS & inputs.keys():
            if isinstance(inputs[name], str) and inputs[name].strip().lower() == RANDOM:
                inputs[name] = draw.randrange(SEED_RANGE)


def seeds_used(prompt: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """``{node id: seed}`` for every seed input set to a number, so a result can be reproduced."""
    seeds: dict[str, int] = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            continue
        for name in sorted(SEED_INPUTS & inputs.keys()):
            value = inputs[name]
            if isinstance(value, int) and not isinstance(value, bool):
                seeds[node_id] = value
    return seeds
