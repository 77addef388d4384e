"""Workflows saved from ComfyUI's editor run as they are: converted with the running ComfyUI's node
definitions, subgraph instances included, with params naming nodes by their editor titles."""

from __future__ import annotations

from typing import Any

from .helpers import assert_completed, decode_image

SUBGRAPH = "9b0c5a55-3c5e-4d3b-8a52-7f1f2f1f0a01"


def _node(
    node_id: int,
    type_: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    values: list[Any],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": type_,
        "pos": [0, 0],
        "size": [200, 100],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": inputs,
        "outputs": outputs,
        "properties": {},
        "widgets_values": values,
        **extra,
    }


def scaled_twice() -> dict[str, Any]:
    """EmptyImage -> two instances of a subgraph "Scale" (ImageScale inside, its width promoted to the
    instance) -> two SaveImage nodes, as the editor saves it."""
    scale = _node(
        1,
        "ImageScale",
        [
            {"name": "image", "type": "IMAGE", "link": 1},
            {"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 2},
        ],
        [{"name": "IMAGE", "type": "IMAGE", "links": [3]}],
        ["nearest-exact", 64, 24, "disabled"],
    )
    definition = {
        "id": SUBGRAPH,
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": 1, "lastLinkId": 3, "lastRerouteId": 0},
        "revision": 0,
        "config": {},
        "name": "Scale",
        "inputNode": {"id": -10, "bounding": [0, 0, 120, 60]},
        "outputNode": {"id": -20, "bounding": [400, 0, 120, 60]},
        "inputs": [
            {"id": "in-image", "name": "image", "type": "IMAGE", "linkIds": [1], "pos": [0, 0]},
            {"id": "in-width", "name": "width", "type": "INT", "linkIds": [2], "pos": [0, 20]},
        ],
        "outputs": [{"id": "out-image", "name": "IMAGE", "type": "IMAGE", "linkIds": [3], "pos": [400, 0]}],
        "widgets": [],
        "nodes": [scale],
        "groups": [],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
            {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "INT"},
            {"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
        "extra": {},
    }

    def instance(node_id: int, link_in: int, link_out: int, width: int) -> dict[str, Any]:
        return _node(
            node_id,
            SUBGRAPH,
            [
                {"name": "image", "type": "IMAGE", "link": link_in},
                {"name": "width", "type": "INT", "widget": {"name": "width"}, "link": None},
            ],
            [{"name": "IMAGE", "type": "IMAGE", "links": [link_out]}],
            [width],
            properties={"proxyWidgets": [["-1", "width"]]},
        )

    return {
        "id": "5f0c1d2e-0000-4000-8000-000000000001",
        "revision": 0,
        "last_node_id": 31,
        "last_link_id": 15,
        "nodes": [
            _node(
                1,
                "EmptyImage",
                [],
                [{"name": "IMAGE", "type": "IMAGE", "links": [11, 13]}],
                [64, 64, 1, 255],
                title="Canvas",
            ),
            instance(10, 11, 12, 32),
            instance(20, 13, 14, 16),
            _node(
                30, "SaveImage", [{"name": "images", "type": "IMAGE", "link": 12}], [], ["wide"], title="Wide"
            ),
            _node(
                31,
                "SaveImage",
                [{"name": "images", "type": "IMAGE", "link": 14}],
                [],
                ["narrow"],
                title="Narrow",
            ),
        ],
        "links": [
            [11, 1, 0, 10, 0, "IMAGE"],
            [12, 10, 0, 30, 0, "IMAGE"],
            [13, 1, 0, 20, 0, "IMAGE"],
            [14, 20, 0, 31, 0, "IMAGE"],
        ],
        "groups": [],
        "definitions": {"subgraphs": [definition]},
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def test_an_editor_workflow_with_subgraph_instances_runs_with_each_instances_values(worker) -> None:
    output = assert_completed(worker.runsync({"workflow": scaled_twice()}))
    sizes = {item["node_id"]: decode_image(item).size for item in output["outputs"]}
    assert sizes == {"30": (32, 24), "31": (16, 24)}


def test_params_name_editor_nodes_by_title_after_conversion(worker) -> None:
    job = {
        "workflow": scaled_twice(),
        "params": {"Canvas": {"height": 40}, "Narrow": {"filename_prefix": "thin"}},
    }
    output = assert_completed(worker.runsync(job))
    by_node = {item["node_id"]: item for item in output["outputs"]}
    assert decode_image(by_node["30"]).size == (32, 24)
    assert by_node["31"]["filename"].startswith("thin")
