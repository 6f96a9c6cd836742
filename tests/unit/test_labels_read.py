"""Image labels have one owner (imagekit/build/labels.py): what layer_labels and oci_labels write, ImageLabels
reads back; an image imagekit did not build, or a label that does not parse, reads as empty."""
from __future__ import annotations

import json

from imagekit.build.labels import ImageLabels, LaidOutLayer, layer_labels, shown_labels
from imagekit_core.labels import LAYERS_LABEL, PIPELINE_LABEL, STEPS_LABEL


def test_what_is_written_is_read_back() -> None:
    layers: list[dict[str, object]] = [
        {"digest": "sha256:r", "kind": "runtime", "name": "runtime", "steps": []},
        {"digest": "sha256:d", "kind": "deps", "name": "deps-count", "steps": ["count"]},
        {"digest": "sha256:c", "kind": "code", "name": "code-count", "steps": ["count"]}]
    written = {**layer_labels(layers, 2, ("a", "b"), ["count"]), PIPELINE_LABEL: "wordfreq", STEPS_LABEL: "count"}
    read = ImageLabels.read(written)
    assert read.pipeline == "wordfreq" and read.steps == ("count",) and read.base_layers == 2
    assert read.shared_steps == ("a", "b")
    assert read.layers[1] == LaidOutLayer("sha256:d", "deps", "deps-count", ("count",))
    assert LAYERS_LABEL not in shown_labels(written) and PIPELINE_LABEL in shown_labels(written)


def test_layers_it_did_not_lay_out_are_the_base_and_the_last_one_the_pipeline() -> None:
    read = ImageLabels.read({LAYERS_LABEL: json.dumps([{"digest": "sha256:r", "kind": "runtime", "name": "runtime"}]),
                             "dev.imagekit.base-layers": "2"})
    assert read.layer_at(0, "sha256:b", 4).kind == "base" and read.layer_at(0, "sha256:b", 4).name == "base-0"
    assert read.layer_at(1, "sha256:r", 4).name == "runtime"
    assert read.layer_at(3, "sha256:p", 4).kind == "pipeline"


def test_a_foreign_or_broken_label_set_reads_as_empty() -> None:
    assert ImageLabels.read({}) == ImageLabels()
    broken = ImageLabels.read({LAYERS_LABEL: "{not json", "dev.imagekit.base-layers": "many"})
    assert broken.layers == () and broken.base_layers is None
    assert ImageLabels.read({LAYERS_LABEL: json.dumps([{"no": "digest"}, 3])}).layers == ()
