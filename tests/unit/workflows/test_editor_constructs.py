"""One editor construct at a time, against what ComfyUI's own frontend makes of it.

``tests/fixtures/editor_graphs/<stem>.json`` are small hand-made UI-format workflows (version 0.4), each
built around one construct the frontend's ``graphToPrompt`` (comfyui-frontend-package 1.35.9, as
ComfyUI 0.8.0 pins it) treats specially: widget values by position, widget inputs, old files,
PrimitiveNodes, reroutes, muted and bypassed nodes, subgraphs, dynamic inputs, file name and dynamic
prompt replacements. ``tests/fixtures/frontend_prompts/graphs/<stem>.json`` is the prompt the real
frontend built from each (``scripts/record_frontend_prompts.py``, headless Chromium, browser clock in
UTC). Every node must match in ``class_type`` and ``inputs`` (``_meta`` and key order aside; compared
as JSON text so that ``1`` and ``true`` or ``2`` and ``2.0`` differ); the construct tests then check,
by eye, the values each fixture is about.

The ``error_*`` and ``record_audio_*`` fixtures are conversions the frontend cannot show (it needs a
camera or a microphone), checked against the converter alone.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from typing import Any

import pytest

from comfy_serverless.workflows.editor import ConversionError
from tests.support.editor_graphs import GRAPHS, RECORDINGS, convert, graph, recording

# The fixtures of this file (other files own group_* and links_*).
STEMS = (
    "widgets_seed_control",
    "widgets_upload_button",
    "widgets_multiline_values",
    "widget_inputs_relinked",
    "migrate_force_input",
    "primitive_int_two_ranges",
    "primitive_combo",
    "primitive_string_replace",
    "primitive_unconnected",
    "primitive_string_replace_in_subgraph",
    "reroute_legacy_chain",
    "reroute_native",
    "notes",
    "mode_bypass_passthrough",
    "mode_bypass_no_match",
    "mode_muted_consumer",
    "mode_bypass_first_input_other_type",
    "subgraph_promoted_widgets",
    "subgraph_proxy_widgets_string",
    "subgraph_two_instances",
    "subgraph_no_proxy_property",
    "subgraph_nested_inner_first",
    "subgraph_nested_inner_last",
    "subgraph_output_bypassed_inner",
    "subgraph_instance_bypassed",
    "subgraph_fed_by_primitive",
    "array_widget_value",
    "dynamic_combo_resize",
    "dynamic_combo_linked_subinput",
    "autogrow_three",
    "autogrow_gap",
    "matchtype_switch",
    "filename_prefix",
    "dynprompt_comments",
    "dynprompt_choice",
    "record_audio_unconnected",
)
NOT_RECORDED = ("error_unknown_class", "error_webcam_capture")

# Nodes where the converter differs from the recording on purpose.
DELIBERATE: dict[tuple[str, str], str] = {
    ("widgets_seed_control", "8"): (
        "seed 18446744073709551615: JSON.parse reads every number as a double, so the frontend sends "
        "18446744073709552000, which is above KSampler's maximum and ComfyUI refuses; the converter "
        "keeps the exact integer the file holds"
    ),
}

# `{a|b}` choices are resolved with Math.random: only the set of possible results can be compared.
RANDOM_TEXT: dict[tuple[str, str, str], set[str]] = {
    ("dynprompt_choice", "1", "text"): {
        f"a {colour} ball, {size} "
        for colour in ("red", "green", "blue")
        for size in ("big", "tiny", "small")
    }
}


def _recorded_at(stem: str) -> dt.datetime:
    return dt.datetime.fromisoformat(recording(stem)["recorded_at"].replace("Z", "+00:00"))


def _convert(stem: str, *, seed: int = 0) -> dict[str, Any]:
    now = _recorded_at(stem) if (RECORDINGS / f"{stem}.json").exists() else dt.datetime(2026, 1, 2, 3, 4, 5)
    return convert(graph(stem), now=now, seed=seed)


@cache
def _prompt(stem: str) -> dict[str, Any]:
    """The converter's prompt, as JSON would carry it (read-only: shared between tests)."""
    prompt: dict[str, Any] = json.loads(json.dumps(_convert(stem)))
    return prompt


def _recorded(stem: str) -> dict[str, Any]:
    prompt: dict[str, Any] = recording(stem)["prompt"]
    return prompt


def _what_runs(stem: str, node_id: str, node: dict[str, Any]) -> str:
    """A node's class and inputs as JSON text; random choices are checked, then left out."""
    inputs = dict(node["inputs"])
    for (s, n, name), possible in RANDOM_TEXT.items():
        if (s, n) == (stem, node_id) and name in inputs:
            assert inputs.pop(name) in possible
    return json.dumps([node["class_type"], inputs], sort_keys=True, ensure_ascii=False)


def _node_cases() -> list[Any]:
    cases = []
    for stem in STEMS:
        path = RECORDINGS / f"{stem}.json"
        node_ids = sorted(json.loads(path.read_text())["prompt"]) if path.exists() else ["?"]
        for node_id in node_ids:
            reason = DELIBERATE.get((stem, node_id))
            marks = [pytest.mark.skip(reason=f"deliberate difference: {reason}")] if reason else []
            cases.append(pytest.param(stem, node_id, id=f"{stem}:{node_id}", marks=marks))
    return cases


# --- the recordings -------------------------------------------------------------------------------------


def test_every_fixture_is_recorded_by_frontend_1_35_9() -> None:
    assert {p.stem for p in GRAPHS.glob("*.json")} >= {*STEMS, *NOT_RECORDED}
    for stem in STEMS:
        record = recording(stem)
        assert record["source"] == f"editor_graphs/{stem}.json"
        assert (record["comfyui_version"], record["frontend_version"]) == ("0.8.0", "1.35.9")
        # The frontend itself had nothing to complain about while loading and converting these.
        assert record["console_errors"] == [], stem


@pytest.mark.parametrize("stem", STEMS)
def test_same_nodes_as_the_frontend(stem: str) -> None:
    assert sorted(_prompt(stem)) == sorted(_recorded(stem))


@pytest.mark.parametrize(("stem", "node_id"), _node_cases())
def test_node_matches_the_frontend(stem: str, node_id: str) -> None:
    ours, theirs = _prompt(stem), _recorded(stem)
    assert node_id in ours
    assert _what_runs(stem, node_id, ours[node_id]) == _what_runs(stem, node_id, theirs[node_id])


# --- 1. widget values by position -----------------------------------------------------------------------


def test_seed_takes_its_value_and_its_control_companion_is_not_sent() -> None:
    p = _prompt("widgets_seed_control")
    assert p["5"]["inputs"] == {
        "seed": 42,
        "steps": 30,
        "cfg": 6.5,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
        "denoise": 0.75,
    }
    # An old file: control_after_generate `true`, sampler name with the `sample_` prefix.
    assert p["6"]["inputs"]["seed"] == 7
    assert p["6"]["inputs"]["sampler_name"] == "euler_ancestral"
    assert p["7"]["inputs"]["noise_seed"] == 123456789012
    assert p["7"]["inputs"]["steps"] == 20
    assert p["7"]["inputs"]["return_with_leftover_noise"] == "disable"


def test_a_seed_above_2_53_keeps_its_exact_value_where_the_frontend_rounds_it() -> None:
    """The one deliberate difference here: JavaScript rounds the seed to a double above KSampler's
    maximum, which ComfyUI refuses; the converter sends the integer the file holds."""
    assert _recorded("widgets_seed_control")["8"]["inputs"]["seed"] == 18446744073709552000
    assert _prompt("widgets_seed_control")["8"]["inputs"]["seed"] == 18446744073709551615


def test_upload_button_takes_a_value_slot_but_is_not_sent() -> None:
    p = _prompt("widgets_upload_button")
    assert p["3"]["inputs"] == {"image": "x.png"}
    assert p["4"]["inputs"] == {"image": "mask.png", "channel": "red"}
    assert p["5"]["inputs"] == {"image": "y.png"}


def test_multiline_text_reads_back_as_a_textarea_value() -> None:
    p = _prompt("widgets_multiline_values")
    assert p["2"]["inputs"]["text"] == "line one\nline two\nline three\n"
    assert p["3"]["inputs"]["text"] == "12345"
    assert p["4"]["inputs"]["text"] == ""
    assert p["5"]["inputs"]["value"] == "a\nb"
    # Multiline widgets become strings; a single-line text widget keeps the saved number.
    assert p["6"]["inputs"] == {"string_a": "", "string_b": "2.5", "delimiter": 7}


# --- 2. widget inputs, matched by name and link id ------------------------------------------------------


def test_widget_inputs_are_linked_by_name_whatever_the_saved_order_and_target_slot() -> None:
    p = _prompt("widget_inputs_relinked")
    # PrimitiveNodes look their target up by link.target_slot: saved as 9 (past the end) for seed and as
    # 1 (positive, in the definition's order) for steps; both must be re-derived from the inputs.
    assert p["13"]["inputs"]["seed"] == 1234
    assert p["13"]["inputs"]["steps"] == 33
    assert p["13"]["inputs"]["denoise"] == 1
    assert p["13"]["inputs"]["cfg"] == ["14", 0]
    assert p["13"]["inputs"]["latent_image"] == ["12", 0]
    assert "positive" not in p["13"]["inputs"]


# --- 3. files saved before frontend 1.16 ---------------------------------------------------------------


def test_old_value_of_a_force_input_is_dropped() -> None:
    p = _prompt("migrate_force_input")
    assert p["1"]["inputs"]["prompt"] == "a red fox in the snow"
    assert p["1"]["inputs"]["seed"] == 5
    # Without the migration, "old negative text" would shift image_denoise to that string.
    assert p["1"]["inputs"]["image_denoise"] == 0.7
    assert p["3"]["inputs"]["image_denoise"] == 0.4


def test_old_force_input_keeps_its_link() -> None:
    assert _recorded("migrate_force_input")["1"]["inputs"]["negative_prompt"] == ["2", 0]
    assert _prompt("migrate_force_input")["1"]["inputs"]["negative_prompt"] == ["2", 0]


# --- 4. PrimitiveNode -----------------------------------------------------------------------------------


def test_int_primitive_is_clamped_to_the_range_both_targets_accept() -> None:
    p = _prompt("primitive_int_two_ranges")
    assert "1" not in p
    assert p["2"]["inputs"]["width"] == 10000  # EmptyLatentImage allows 16384, KSampler.steps 10000
    assert p["3"]["inputs"]["steps"] == 10000


def test_combo_primitive_sets_every_target() -> None:
    p = _prompt("primitive_combo")
    assert "1" not in p
    assert p["2"]["inputs"]["sampler_name"] == p["3"]["inputs"]["sampler_name"] == "dpmpp_2m"


def test_string_primitive_runs_widget_replace_only_when_asked() -> None:
    p = _prompt("primitive_string_replace")
    assert p["3"]["inputs"]["delimiter"] == "768x1024_%Missing Node.width%_%EmptyLatentImage.nope%"
    assert p["5"]["inputs"]["delimiter"] == (
        "%EmptyLatentImage.width%x%Latent Size.height%_%Missing Node.width%_%EmptyLatentImage.nope%"
    )


def test_unconnected_primitive_changes_nothing() -> None:
    assert _prompt("primitive_unconnected") == {
        "2": {
            "inputs": {"width": 640, "height": 480, "batch_size": 2},
            "class_type": "EmptyLatentImage",
            "_meta": {"title": "Empty Latent Image"},
        }
    }


def test_save_node_inside_a_subgraph_searches_the_wholegraph() -> None:
    # SaveImage's filename_prefix uses app.graph, the root graph (saveImageExtraOutput.ts:39).
    assert _prompt("primitive_string_replace_in_subgraph")["10:6"]["inputs"]["filename_prefix"] == "768_1024"


def test_primitive_inside_a_subgraph_replaces_from_that_subgraph_only() -> None:
    assert _prompt("primitive_string_replace_in_subgraph")["10:5"]["inputs"]["delimiter"] == (
        "320_%Latent Size.height%"
    )


# --- 5. reroutes and notes ------------------------------------------------------------------------------


def test_legacy_reroute_chain_with_a_bypassed_reroute_leads_to_the_origin() -> None:
    p = _prompt("reroute_legacy_chain")
    assert set(p) == {"1", "5", "6"}
    assert p["5"]["inputs"]["latent_image"] == ["1", 0]
    assert p["6"]["inputs"]["samples"] == ["1", 0]


def test_native_reroutes_do_not_change_the_links() -> None:
    p = _prompt("reroute_native")
    assert p["2"]["inputs"]["latent_image"] == ["1", 0]
    assert p["3"]["inputs"]["samples"] == ["1", 0]


def test_notes_are_never_sent() -> None:
    assert set(_prompt("notes")) == {"3"}


# --- 6. muted and bypassed nodes ------------------------------------------------------------------------


def test_bypassed_nodes_pass_the_matching_input_through() -> None:
    p = _prompt("mode_bypass_passthrough")
    assert set(p) == {"1", "4"}
    assert p["4"]["inputs"]["images"] == ["1", 0]


def test_bypassed_node_without_a_matching_input_drops_the_consumers_input() -> None:
    p = _prompt("mode_bypass_no_match")
    assert "2" not in p
    assert p["3"]["inputs"] == {"filename_prefix": "no_match"}


def test_consumer_of_a_muted_node_loses_that_input() -> None:
    p = _prompt("mode_muted_consumer")
    assert "2" not in p
    assert p["3"]["inputs"] == {"filename_prefix": "muted"}


def test_bypassed_node_passes_the_first_input_of_the_wanted_type() -> None:
    # KSampler's first input is MODEL; its LATENT output passes latent_image through.
    p = _prompt("mode_bypass_first_input_other_type")
    assert "2" not in p
    assert p["3"]["inputs"]["samples"] == ["1", 0]


# --- 7. subgraphs ---------------------------------------------------------------------------------------


def test_promoted_widgets_take_the_instance_values() -> None:
    # proxyWidgets lists height first: the saved values follow that order, not the inputs'.
    p = _prompt("subgraph_promoted_widgets")
    assert "10" not in p
    # batch_size is only shown on the instance (["1", "batch_size"]): the inner node's value.
    assert p["10:1"]["inputs"] == {"width": 640, "height": 384, "batch_size": 3}
    assert p["11"]["inputs"]["samples"] == ["10:1", 0]


def test_proxy_widgets_in_the_legacy_json_string_form() -> None:
    p = _prompt("subgraph_proxy_widgets_string")
    assert p["10:1"]["inputs"]["width"] == 1024
    assert p["10:1"]["inputs"]["height"] == 576


def test_two_instances_of_one_subgraph_keep_their_own_values() -> None:
    p = _prompt("subgraph_two_instances")
    assert (p["10:1"]["inputs"]["width"], p["10:1"]["inputs"]["height"]) == (640, 384)
    assert (p["20:1"]["inputs"]["width"], p["20:1"]["inputs"]["height"]) == (1280, 720)
    assert p["21"]["inputs"]["samples"] == ["20:1", 0]


def test_instance_without_proxy_widgets_fills_promoted_widgets_in_order() -> None:
    p = _prompt("subgraph_no_proxy_property")
    assert p["10:1"]["inputs"]["width"] == 320
    assert p["10:1"]["inputs"]["height"] == 240


@pytest.mark.parametrize("stem", ["subgraph_nested_inner_first", "subgraph_nested_inner_last"])
def test_nested_subgraphs_get_path_ids_whatever_the_definition_order(stem: str) -> None:
    p = _prompt(stem)
    assert set(p) == {"12:7:3", "12:7:4", "12:8", "13"}
    assert p["12:7:3"]["inputs"]["text"] == "inner value"
    assert p["12:8"]["inputs"]["text"] == "outer value"
    # The outermost instance's value wins over the inner instance's own (600) and the node's (512).
    assert p["12:7:4"]["inputs"]["width"] == 768
    assert p["13"]["inputs"]["samples"] == ["12:7:4", 0]


def test_subgraph_output_fed_by_a_bypassed_inner_node_leads_outside() -> None:
    p = _prompt("subgraph_output_bypassed_inner")
    assert "10:1" not in p
    assert p["11"]["inputs"]["images"] == ["2", 0]


def test_bypassed_subgraph_instance_passes_through_and_its_nodes_still_run() -> None:
    p = _prompt("subgraph_instance_bypassed")
    assert p["11"]["inputs"]["images"] == ["2", 0]
    assert p["10:1"]["inputs"]["image"] == ["2", 0]


def test_primitive_feeding_a_promoted_widget_sets_the_inner_value() -> None:
    p = _prompt("subgraph_fed_by_primitive")
    assert "1" not in p
    assert p["10:1"]["inputs"] == {"width": 896, "height": 384, "batch_size": 3}


# --- 8. array values ------------------------------------------------------------------------------------


def test_array_widget_values_are_wrapped() -> None:
    p = _prompt("array_widget_value")
    assert p["1"]["inputs"]["value"] == {"__value__": ["red", "green"]}
    assert p["2"]["inputs"]["delimiter"] == {"__value__": []}
    assert p["2"]["inputs"]["string_a"] == "x,y"  # a textarea turns the list into text


# --- 9. dynamic inputs ----------------------------------------------------------------------------------

RESIZE_INPUTS = {
    "11": {"resize_type": "scale by multiplier", "resize_type.multiplier": 1.5, "scale_method": "bilinear"},
    "12": {
        "resize_type": "scale dimensions",
        "resize_type.width": 800,
        "resize_type.height": 600,
        "resize_type.crop": "disabled",
        "scale_method": "bicubic",
    },
    "13": {"resize_type": "scale longer dimension", "resize_type.longer_size": 1024, "scale_method": "area"},
    "14": {
        "resize_type": "scale shorter dimension",
        "resize_type.shorter_size": 256,
        "scale_method": "lanczos",
    },
    "15": {"resize_type": "scale width", "resize_type.width": 640, "scale_method": "nearest-exact"},
    "16": {"resize_type": "scale height", "resize_type.height": 480, "scale_method": "area"},
    "17": {"resize_type": "scale total pixels", "resize_type.megapixels": 2, "scale_method": "bilinear"},
    "18": {
        "resize_type": "match size",
        "resize_type.match": ["1", 0],
        "resize_type.crop": "disabled",
        "scale_method": "area",
    },
}


@pytest.mark.parametrize("node_id", sorted(RESIZE_INPUTS))
def test_dynamic_combo_sub_inputs_follow_the_choice(node_id: str) -> None:
    p = _prompt("dynamic_combo_resize")
    assert p[node_id]["inputs"] == {**RESIZE_INPUTS[node_id], "input": ["1", 0]}


def test_dynamic_combo_sub_input_can_be_linked() -> None:
    p = _prompt("dynamic_combo_linked_subinput")
    assert p["3"]["inputs"]["resize_type.width"] == ["2", 0]
    assert p["3"]["inputs"]["resize_type.height"] == 600
    assert p["3"]["inputs"]["resize_type.crop"] == "center"


def test_autogrow_inputs_all_connected() -> None:
    p = _prompt("autogrow_three")
    assert p["4"]["inputs"] == {
        "images.image0": ["1", 0],
        "images.image1": ["2", 0],
        "images.image2": ["3", 0],
    }


def test_autogrow_gap_is_closed() -> None:
    # image1 was empty: image2's link moves down to image1.
    assert _prompt("autogrow_gap")["4"]["inputs"] == {"images.image0": ["1", 0], "images.image1": ["3", 0]}


def test_match_type_switch() -> None:
    p = _prompt("matchtype_switch")
    assert p["3"]["inputs"] == {"switch": True, "on_false": ["1", 0], "on_true": ["2", 0]}
    assert p["4"]["inputs"]["images"] == ["3", 0]
    assert p["6"]["inputs"] == {"switch": False, "on_false": ["5", 0]}


# --- 10. filename_prefix --------------------------------------------------------------------------------


def test_filename_prefix_replacements() -> None:
    now = _recorded_at("filename_prefix")
    p = _prompt("filename_prefix")
    prefixes = {
        n: node["inputs"]["filename_prefix"] for n, node in p.items() if node["class_type"] == "SaveImage"
    }
    assert prefixes == {
        "3": f"{now:%Y-%m-%d}/img",
        "4": f"{now:%H-%M-%S}_x",  # `hh` is the 24-hour clock
        "5": "w832",  # by title
        # By "Node name for S&R", before node 9 whose title is "EmptyLatentImage".
        "6": "h1216",
        "7": "%Unknown Node.width%_z",
        "8": "111",  # node 9's own S&R name
    }


def test_filename_prefix_date_follows_now() -> None:
    prompt = convert(graph("filename_prefix"), now=dt.datetime(2031, 2, 3, 4, 5, 6))
    assert prompt["3"]["inputs"]["filename_prefix"] == "2031-02-03/img"
    assert prompt["4"]["inputs"]["filename_prefix"] == "04-05-06_x"


# --- 11. dynamic prompts --------------------------------------------------------------------------------


def test_dynamic_prompt_comments_and_escapes() -> None:
    assert _prompt("dynprompt_comments")["1"]["inputs"]["text"] == (
        "a photo of a cat \non a mat  with {braces} and a | bar, see http:"
    )


def test_dynamic_prompt_choice_is_one_of_the_possible_resolutions() -> None:
    possible = RANDOM_TEXT[("dynprompt_choice", "1", "text")]
    assert _recorded("dynprompt_choice")["1"]["inputs"]["text"] in possible
    seen = {_convert("dynprompt_choice", seed=seed)["1"]["inputs"]["text"] for seed in range(60)}
    assert seen <= possible
    assert len(seen) > 3  # really random, not always the first choice


# --- 12. what the converter refuses ---------------------------------------------------------------------


def test_unknown_class_is_refused_naming_class_and_node() -> None:
    with pytest.raises(ConversionError) as caught:
        _convert("error_unknown_class")
    assert "NotARealNode" in str(caught.value)
    assert "node 7" in str(caught.value)


def test_webcam_capture_feeding_a_save_is_refused_naming_the_node() -> None:
    with pytest.raises(ConversionError) as caught:
        _convert("error_webcam_capture")
    assert "WebcamCapture" in str(caught.value)
    assert "node 1" in str(caught.value)


def test_unconnected_record_audio_is_allowed() -> None:
    p = _prompt("record_audio_unconnected")
    assert p["1"]["class_type"] == "RecordAudio"
    assert p["1"]["inputs"] == {"audio": ""}
    assert p["2"]["inputs"]["batch_size"] == 1
