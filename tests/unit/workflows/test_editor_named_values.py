"""Values saved by widget name, which frontend 1.35.9 does not read (it assigns ``undefined`` by
position and sends a prompt missing those inputs): the converter matches them by name."""

from __future__ import annotations

from typing import Any

from tests.support.editor_graphs import convert


def _sampler(**saved: Any) -> dict[str, Any]:
    return {
        "version": 0.4,
        "nodes": [
            {
                "id": 3,
                "type": "KSampler",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
                "properties": {},
                **saved,
            },
            {
                "id": 4,
                "type": "PreviewAny",
                "mode": 0,
                "inputs": [{"name": "source", "type": "*", "link": 1}],
                "outputs": [],
                "properties": {},
            },
        ],
        "links": [[1, 3, 0, 4, 0, "LATENT"]],
    }


def test_dict_form_widgets_values_are_matched_by_widget_name() -> None:
    saved = {
        "seed": 5,
        "control_after_generate": "fixed",
        "steps": 7,
        "cfg": 2.5,
        "sampler_name": "ddim",
        "scheduler": "karras",
        "denoise": 0.5,
    }
    inputs = convert(_sampler(widgets_values=saved))["3"]["inputs"]
    assert inputs == {
        "seed": 5,
        "steps": 7,
        "cfg": 2.5,
        "sampler_name": "ddim",
        "scheduler": "karras",
        "denoise": 0.5,
    }


def test_widgets_values_named_win_over_positions() -> None:
    positional = [1, "randomize", 20, 8, "euler", "normal", 1]
    named = {"steps": 30, "sampler_name": "dpmpp_2m", "no_such_widget": 1}
    inputs = convert(_sampler(widgets_values=positional, widgets_values_named=named))["3"]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"]) == (1, 30, 8, "dpmpp_2m")
    assert "no_such_widget" not in inputs
