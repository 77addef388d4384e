"""Legacy group nodes (``workflow>NAME``) converted exactly as ComfyUI's frontend 1.35.9 converts them.

Each ``tests/fixtures/editor_graphs/group_*.json`` was loaded into the real frontend (ComfyUI 0.8.0,
``scripts/record_frontend_prompts.py``) and its prompt recorded under
``tests/fixtures/frontend_prompts/graphs/``. A conversion matches when every node has the same
``class_type`` and ``inputs``. The frontend's quirks are part of what is checked: inner inputs looked
up by stale indexes, converted widgets sorted as strings, inputs dropped when they point at a node
that is not emitted. Where the frontend would send a prompt ComfyUI cannot run, the converter refuses
with an error that names the node.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from comfy_serverless.workflows.editor import ConversionError
from tests.support.editor_graphs import GRAPHS, RECORDINGS, convert, graph, what_runs

ERROR_FIXTURES = {
    "group_error_missing_definition",
    "group_error_unknown_class",
    "group_error_nested",
    "group_error_in_subgraph",
}
RECORDED = sorted(
    p.stem
    for p in GRAPHS.glob("group_*.json")
    if p.stem not in ERROR_FIXTURES and (RECORDINGS / p.name).exists()
)


def _convert(workflow: dict[str, Any]) -> dict[str, Any]:
    return convert(workflow)


def _prompt(stem: str) -> dict[str, Any]:
    return convert(graph(stem))


def test_every_non_error_fixture_is_recorded() -> None:
    expected = {p.stem for p in GRAPHS.glob("group_*.json")} - ERROR_FIXTURES
    assert set(RECORDED) == expected
    assert len(RECORDED) >= 14


@pytest.mark.parametrize("stem", RECORDED)
def test_conversion_matches_the_frontend(stem: str) -> None:
    recorded = json.loads((RECORDINGS / f"{stem}.json").read_text())
    assert recorded["frontend_version"] == "1.35.9"
    assert what_runs(_prompt(stem)) == what_runs(recorded["prompt"])


# --- what the recordings show, spelled out -----------------------------------------------------------


def test_legacy_definition_emits_inner_nodes_under_the_group_id() -> None:
    prompt = _prompt("group_example_legacy_invert_save")
    assert set(prompt) == {"1", "3:0", "3:1", "3:2", "5"}
    assert prompt["3:0"]["inputs"]["image"] == ["1", 0]
    assert prompt["3:1"]["_meta"]["title"] == "Second Invert"
    # The instance's widget value wins over the definition's "def_prefix".
    assert prompt["3:2"]["inputs"]["filename_prefix"] == "gn_prefix"
    # The group output (kept visible by `external`) is inner node 1.
    assert prompt["5"]["inputs"]["images"] == ["3:1", 0]


def test_new_dialect_definition_takes_every_widget_from_the_instance() -> None:
    prompt = _prompt("group_example_text_to_image")
    assert prompt["8:3"]["inputs"]["seed"] == 123456789
    assert prompt["8:3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    assert prompt["8:3"]["inputs"]["negative"] == ["8:2", 0]
    assert prompt["8:2"]["inputs"] == {"text": "lowres, blurry", "clip": ["1", 1]}
    assert prompt["8:0"]["inputs"] == {"width": 768, "height": 512, "batch_size": 2}
    assert prompt["7"]["inputs"]["images"] == ["8:4", 0]


def test_converted_legacy_widget_ignores_the_link_into_its_group_socket() -> None:
    prompt = _prompt("group_legacy_converted_widgets")
    # PrimitiveInt 12 (777) feeds the group's `seed` socket, but the exposed index points at `width`.
    assert prompt["10:1"]["inputs"]["seed"] == 424242
    assert prompt["10:1"]["inputs"]["steps"] == 22
    assert prompt["10:1"]["inputs"]["model"] == ["1", 0]


def test_inner_link_into_a_stale_legacy_slot_lands_on_another_input() -> None:
    prompt = _prompt("group_index_drift_converted_order")
    # The PrimitiveFloat was wired to legacy slot 4 (cfg); at runtime slot 4 is `seed`.
    assert prompt["5:2"]["inputs"]["seed"] == ["5:0", 0]
    assert prompt["5:2"]["inputs"]["cfg"] == 6
    assert prompt["5:0"]["inputs"] == {"value": 2.5}


def test_converted_widgets_sort_as_strings() -> None:
    prompt = _prompt("group_index_drift_lexicographic")
    sampler = prompt["5:1"]["inputs"]
    # PrimitiveFloat 9 is wired to the group's cfg socket; it reaches start_at_step.
    assert sampler["start_at_step"] == ["9", 0]
    assert sampler["cfg"] == 5.5
    assert sampler["noise_seed"] == 8675309
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("heun", "exponential")


def test_inner_primitives_drive_the_widgets_they_feed() -> None:
    prompt = _prompt("group_inner_primitive")
    assert "8:0" not in prompt and "8:1" not in prompt
    assert prompt["8:3"]["inputs"]["seed"] == 31337
    assert prompt["8:3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    assert prompt["8:3"]["inputs"]["scheduler"] == "karras"


def test_inner_reroutes_drop_their_targets_but_lead_group_outputs_back() -> None:
    prompt = _prompt("group_inner_reroute")
    assert "image" not in prompt["4:2"]["inputs"]  # fed through an internal Reroute
    assert "image" not in prompt["4:5"]["inputs"]  # fed through a Reroute at the group's edge
    assert prompt["5"]["inputs"]["images"] == ["4:2", 0]
    assert prompt["6"]["inputs"]["images"] == ["4:5", 0]


def test_bypassed_group_still_emits_its_inner_nodes() -> None:
    prompt = _prompt("group_bypassed")
    assert prompt["3:2"]["inputs"]["filename_prefix"] == "bypassed_inner"
    assert prompt["5"]["inputs"]["images"] == ["1", 0]
    assert "mask" not in prompt["6"]["inputs"]  # no MASK input to pass through


def test_muted_group_is_emitted_and_short_values_fall_back_to_class_defaults() -> None:
    prompt = _prompt("group_muted")
    assert prompt["5"]["inputs"]["images"] == ["3:1", 0]
    assert prompt["3:1"]["inputs"]["flip_method"] == "y-axis: horizontally"
    assert prompt["3:2"]["inputs"]["filename_prefix"] == "ComfyUI"  # not the definition's "def_prefix"
    assert prompt["6"]["inputs"]["mask"] == ["3:3", 0]


def test_muted_and_bypassed_inner_nodes_are_left_out_without_pass_through() -> None:
    prompt = _prompt("group_inner_modes")
    assert "3:1" not in prompt and "3:2" not in prompt
    assert prompt["3:3"]["inputs"] == {"filename_prefix": "modes_prefix"}
    assert "images" not in prompt["7"]["inputs"]
    assert prompt["8"]["inputs"]["images"] == ["3:4", 0]


def test_group_output_feeding_two_consumers() -> None:
    prompt = _prompt("group_output_two_consumers")
    assert prompt["3"]["inputs"]["images"] == prompt["4"]["inputs"]["images"] == ["2:0", 0]
    assert prompt["5"]["inputs"]["images"] == ["2:1", 0]
    assert prompt["2:0"]["inputs"]["scale_by"] == 0.25


def test_config_hides_sockets_and_renames_widgets_and_outputs() -> None:
    prompt = _prompt("group_config_overrides")
    assert prompt["2:0"]["inputs"] == {"text": "a red fox"}  # its clip socket is hidden
    assert prompt["2:1"]["inputs"] == {"text": "blurry", "clip": ["1", 1]}
    assert prompt["3"]["inputs"] == {"conditioning_1": ["2:0", 0], "conditioning_2": ["2:2", 0]}


def test_group_inputs_follow_one_step_and_drop_virtual_or_group_origins() -> None:
    prompt = _prompt("group_external_virtual_origins")
    assert prompt["3:0"]["inputs"] == {"upscale_method": "bicubic"}  # Reroute and PrimitiveNode origins
    assert prompt["4:0"]["inputs"] == {"upscale_method": "area", "scale_by": 0.5}  # from another group
    assert prompt["5"]["inputs"]["images"] == ["4:1", 0]


def test_load_image_inside_a_group() -> None:
    prompt = _prompt("group_load_image_defaults")
    assert prompt["4:0"]["inputs"] == {"image": "example.png"}
    assert prompt["4:2"]["inputs"]["filename_prefix"] == "ComfyUI"
    assert prompt["5"]["inputs"]["mask"] == ["4:0", 1]


def test_a_definition_used_twice_gives_independent_instances() -> None:
    workflow = graph("group_example_legacy_invert_save")
    second = copy.deepcopy(workflow["nodes"][1])
    second.update(id=9, inputs=[{"name": "image", "type": "IMAGE", "link": None}], widgets_values=["other"])
    second["outputs"][0]["links"] = []
    workflow["nodes"].append(second)
    prompt = _convert(workflow)
    assert prompt["3:2"]["inputs"]["filename_prefix"] == "gn_prefix"
    assert prompt["9:2"]["inputs"] == {"filename_prefix": "other", "images": ["9:1", 0]}
    assert prompt["9:0"]["inputs"] == {}


# --- refusals --------------------------------------------------------------------------------------------


def _error(workflow: dict[str, Any]) -> ConversionError:
    with pytest.raises(ConversionError) as caught:
        _convert(workflow)
    return caught.value


def test_group_without_definition_is_refused() -> None:
    message = str(_error(graph("group_error_missing_definition")))
    assert "node 4" in message and "'workflow>Vanished'" in message
    assert "probably a custom node that is not installed" in message


def test_group_with_an_unknown_inner_class_is_refused() -> None:
    message = str(_error(graph("group_error_unknown_class")))
    assert "node 7" in message and "'SuperResolutionPlus'" in message
    assert "probably custom nodes that are not installed" in message


def test_muted_group_without_definition_is_left_out_like_any_missing_node() -> None:
    workflow = graph("group_error_missing_definition")
    workflow["nodes"][1]["mode"] = 2
    assert set(_convert(workflow)) == {"1"}


def test_nested_group_node_is_refused() -> None:
    error = _error(graph("group_error_nested"))
    assert "node 5:1" in str(error) and "'workflow>Inner'" in str(error)
    assert error.details["node_id"] == "5:1"


def test_nested_group_registered_after_its_container_is_a_missing_class() -> None:
    workflow = graph("group_error_nested")
    groups = workflow["extra"]["groupNodes"]
    workflow["extra"]["groupNodes"] = {"Outer": groups["Outer"], "Inner": groups["Inner"]}
    message = str(_error(workflow))
    assert "node 5" in message and "'workflow>Inner'" in message and "nested" in message


def test_group_node_inside_a_subgraph_is_refused() -> None:
    message = str(_error(graph("group_error_in_subgraph")))
    assert "node 2:1" in message
    assert "Group nodes inside subgraphs are not supported" in message


def test_group_output_without_a_link_is_refused() -> None:
    # Not valid for the schema (a 7-element link), so the link fixer cannot add the missing link id.
    workflow = graph("group_example_legacy_invert_save")
    workflow["nodes"][1]["outputs"][0]["links"] = []
    workflow["links"][0].append(None)
    message = str(_error(workflow))
    assert "group node 3" in message and "output 0" in message


def test_a_definition_that_cannot_be_read_stops_the_ones_after_it() -> None:
    workflow = graph("group_example_legacy_invert_save")
    groups = workflow["extra"]["groupNodes"]
    workflow["extra"]["groupNodes"] = {
        "Broken": {"nodes": [], "links": None},
        "InvertAndSave": groups["InvertAndSave"],
    }
    message = str(_error(workflow))
    assert "node 3" in message and "'workflow>Broken'" in message
