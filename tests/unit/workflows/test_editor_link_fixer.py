"""The link check and repair the frontend (1.35.9) runs when it loads a workflow.

``tests/fixtures/editor_graphs/links_*.json`` are files with inconsistent links, recorded with the real
frontend into ``tests/fixtures/frontend_prompts/graphs/``. The fixer only changes origin outputs' link
lists and the link list itself; that is visible in the prompt through PrimitiveNodes (they push their
value along their output's links) and group node outputs (resolved through their first link). When
the schema rejects a file, or the fixer throws, the frontend uses the file unrepaired.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from comfy_serverless.workflows.editor.link_fixer import fix_bad_links, validate_workflow
from tests.support.editor_graphs import GRAPHS, RECORDINGS, convert, graph, what_runs

RECORDED = sorted(p.stem for p in GRAPHS.glob("links_*.json") if (RECORDINGS / p.name).exists())


def _prompt(stem: str) -> dict[str, Any]:
    return convert(graph(stem))


def _node(data: dict[str, Any], node_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in data["nodes"] if n["id"] == node_id)
    return found


def test_every_fixture_is_recorded() -> None:
    assert set(RECORDED) == {p.stem for p in GRAPHS.glob("links_*.json")}
    assert len(RECORDED) >= 6


@pytest.mark.parametrize("stem", RECORDED)
def test_conversion_matches_the_frontend(stem: str) -> None:
    recorded = json.loads((RECORDINGS / f"{stem}.json").read_text())
    assert what_runs(_prompt(stem)) == what_runs(recorded["prompt"])


# --- the three repairs ----------------------------------------------------------------------------------


def test_origin_output_gets_the_link_its_target_holds() -> None:
    fixed = fix_bad_links(graph("links_origin_missing_link_id"))
    assert _node(fixed, 8)["outputs"][0]["links"] == [20]
    # So the PrimitiveNode is connected and pushes its value into the seed.
    assert _prompt("links_origin_missing_link_id")["5"]["inputs"]["seed"] == 222


def test_group_output_gets_the_link_its_consumer_holds() -> None:
    prompt = _prompt("links_group_output_missing_link_id")
    assert prompt["5"]["inputs"]["images"] == ["3:1", 0]
    assert prompt["3:2"]["inputs"]["filename_prefix"] == "fixed_group"


def test_links_no_node_refers_to_are_deleted() -> None:
    original = graph("links_unreferenced_extra_link")
    fixed = fix_bad_links(copy.deepcopy(original))
    assert [link[0] for link in fixed["links"]] == [link[0] for link in original["links"]][:-2]
    assert _prompt("links_unreferenced_extra_link")["6"]["inputs"]["samples"] == ["5", 0]


def test_origin_loses_a_link_whose_target_slot_holds_another() -> None:
    fixed = fix_bad_links(graph("links_target_slot_holds_other_link"))
    assert _node(fixed, 9)["outputs"][0]["links"] == []
    assert 21 not in [link[0] for link in fixed["links"]]
    # Only primitive 8 still feeds the seed; unrepaired, primitive 9 (999) would push last.
    assert _prompt("links_target_slot_holds_other_link")["5"]["inputs"]["seed"] == 333


def test_input_links_are_never_changed() -> None:
    original = graph("links_origin_missing_link_id")
    fixed = fix_bad_links(copy.deepcopy(original))
    assert [[i.get("link") for i in n["inputs"]] for n in fixed["nodes"]] == [
        [i.get("link") for i in n["inputs"]] for n in original["nodes"]
    ]


# --- when nothing is repaired ---------------------------------------------------------------------------


def test_a_fixer_that_throws_leaves_the_file_as_it_was() -> None:
    original = graph("links_fixer_throws")
    assert fix_bad_links(original) is original
    prompt = _prompt("links_fixer_throws")
    assert prompt["5"]["inputs"]["seed"] == 111  # the primitive (444) stays unconnected
    assert "samples" not in prompt["6"]["inputs"]


def test_a_file_the_schema_rejects_is_not_repaired() -> None:
    original = graph("links_schema_invalid")
    assert validate_workflow(copy.deepcopy(original)) is None
    assert fix_bad_links(original) is original
    assert _prompt("links_schema_invalid")["5"]["inputs"]["seed"] == 111


def test_version_1_file_without_links_is_used_as_it_is() -> None:
    data = {
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": 0, "lastLinkId": 0, "lastRerouteId": 0},
        "nodes": [],
    }
    assert validate_workflow(copy.deepcopy(data)) is not None
    assert fix_bad_links(data) is data


# --- the schema -----------------------------------------------------------------------------------------


def _valid() -> dict[str, Any]:
    return graph("links_origin_missing_link_id")


def test_schema_reads_string_slots_as_integers() -> None:
    data = _valid()
    data["links"][0][2] = "0abc"
    data["links"][0][4] = " 0"
    parsed = validate_workflow(data)
    assert parsed is not None and parsed["links"][0][2:5] == [0, data["links"][0][3], 0]


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        (lambda d: d["links"][0].append(None), False),
        (lambda d: d["nodes"][0].update(widgets_values=None), False),
        (lambda d: d["nodes"][0]["properties"].update(ver="nightly"), False),
        (lambda d: d["nodes"][0]["properties"].update(ver="v1.2.3"), True),
        (lambda d: d["nodes"][0]["properties"].update(ver="unknown"), True),
        (lambda d: d["nodes"][0].pop("flags"), False),
        (lambda d: d["nodes"][0].update(id=1.5), False),
        (lambda d: d["nodes"][0].update(id="1"), True),
        (lambda d: d["nodes"][0].update(pos={"0": 1, "1": 2}), True),
        (lambda d: d["nodes"][0].update(pos=[1, 2, 3]), False),
        (lambda d: d["links"][0].__setitem__(5, None), False),
        (lambda d: d["links"][0].__setitem__(2, "x"), False),
        (lambda d: d.update(models=[{"name": "a", "url": "not a url", "directory": "x"}]), False),
        (lambda d: d.update(models=[{"name": "a", "url": "https://example.com/a", "directory": "x"}]), True),
        (lambda d: d.pop("version"), False),
    ],
)
def test_schema_accepts_and_rejects_like_the_frontend(change: Any, valid: bool) -> None:
    data = _valid()
    change(data)
    assert (validate_workflow(data) is not None) is valid


def test_schema_strips_the_leading_v_of_a_version() -> None:
    data = _valid()
    data["nodes"][0]["properties"]["ver"] = "v1.2.3"
    parsed = validate_workflow(data)
    assert parsed is not None and parsed["nodes"][0]["properties"]["ver"] == "1.2.3"
