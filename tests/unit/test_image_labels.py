"""The OCI labels pipeline.yaml gives (description, licenses) and the base's digest, in process."""
from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.build.labels import SourceInfo, oci_labels
from imagekit_core.errors import SpecError
from imagekit_core.spec import load_pipeline


def pipeline(tmp_path: Path, extra: str) -> Path:
    step = tmp_path / "steps" / "only"
    step.mkdir(parents=True)
    (step / "step.yaml").write_text("name: only\ncommand: [python3, main.py]\n")
    (step / "main.py").write_text("")
    (tmp_path / "pipeline.yaml").write_text(f"name: p\nsteps: [steps/only]\n{extra}")
    return tmp_path / "pipeline.yaml"


def test_description_and_licenses_become_labels(tmp_path: Path) -> None:
    spec = load_pipeline(pipeline(tmp_path, "description: counts words\nlicenses: MIT OR Apache-2.0\n"))
    labels = oci_labels(spec, SourceInfo("file:///x", "abc", "1.0"), "base:1", "sha256:" + "1" * 64,
                        "2023-11-14T22:13:20Z")
    assert labels["org.opencontainers.image.description"] == "counts words"
    assert labels["org.opencontainers.image.licenses"] == "MIT OR Apache-2.0"
    assert labels["org.opencontainers.image.base.digest"] == "sha256:" + "1" * 64
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_without_them_there_are_no_such_labels(tmp_path: Path) -> None:
    spec = load_pipeline(pipeline(tmp_path, ""))
    labels = oci_labels(spec, SourceInfo("file:///x", "abc", "1.0"), "base:1", "sha256:" + "1" * 64, "now")
    assert "org.opencontainers.image.description" not in labels
    assert "org.opencontainers.image.licenses" not in labels


def test_licenses_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="licenses"):
        load_pipeline(pipeline(tmp_path, "licenses: [MIT]\n"))
