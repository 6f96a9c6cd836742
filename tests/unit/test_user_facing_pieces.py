"""Small pieces of what users of the installed tool rely on: a tag-only image is named, local pod sets are
scoped to their state directory, the offline base's recipe is what its label says."""
from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.build.debianbase import DEFAULT_PACKAGES, BaseRecipe
from imagekit_core.errors import UsageError
from imagekit_core.references import unpinned_warning
from imagekit_deploy.emulator.engine import Engine
from imagekit_deploy.emulator.pods import PodSet
from imagekit_deploy.emulator.state import StateDir

DIGEST = "sha256:" + "ab" * 32


def test_a_tag_only_image_is_a_warning_or_with_require_digest_a_refusal() -> None:
    assert unpinned_warning(f"r:5000/p:1@{DIGEST}", "--image", required=True) is None
    assert unpinned_warning(f"r:5000/p@{DIGEST}", "--image", required=False) is None
    warning = unpinned_warning("r:5000/p:1", "--image", required=False)
    assert warning is not None and "--image r:5000/p:1 names a tag" in warning and "--require-digest" in warning
    with pytest.raises(UsageError, match="names a tag, not a digest.*fix: pass the REF@sha256"):
        unpinned_warning("r:5000/p:1", "--image", required=True)


def test_two_state_directories_name_their_containers_apart(tmp_path: Path) -> None:
    first, second = StateDir(tmp_path / "job-1"), StateDir(tmp_path / "job-2")
    assert first.scope != second.scope and len(first.scope) == 8
    assert StateDir(tmp_path / "job-1" / ".." / "job-1").scope == first.scope  # the directory, however named
    engine = Engine.__new__(Engine)  # naming needs no engine connection
    names = {PodSet(where, engine).container_name("wordfreq-0", "pipeline") for where in (first, second)}
    assert names == {f"wordfreq-0.pipeline.{first.scope}", f"wordfreq-0.pipeline.{second.scope}"}


def test_the_base_recipe_names_its_packages_once() -> None:
    recipe = BaseRecipe(packages=tuple(dict.fromkeys([*DEFAULT_PACKAGES, "git", "python3"])))
    assert recipe.text == f"imagekit base: mmdebstrap bookworm minbase {','.join(DEFAULT_PACKAGES)},git"
    assert BaseRecipe().text != recipe.text


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/imagekit", "/usr/local", "/var/lib", "/var/lib/kubelet/x", "/proc",
                                  "/root", "/var", "/etc/../etc"])
def test_ssd_host_path_refuses_the_nodes_system_directories(path: str) -> None:
    from imagekit_deploy.settings import check_ssd_host_path

    with pytest.raises(UsageError, match="system directory of the node"):
        check_ssd_host_path(path)


@pytest.mark.parametrize("path", ["/var/lib/imagekit", "/mnt/nvme/imagekit", "/data/ssd"])
def test_ssd_host_path_takes_a_directory_of_its_own(path: str) -> None:
    from imagekit_deploy.settings import check_ssd_host_path

    check_ssd_host_path(path)


def test_one_pod_command_at_a_time_changes_a_state_directory(tmp_path: Path) -> None:
    """A second `imagekit pod` on the same state directory waits for the first (two at once broke each other)."""
    import threading
    import time

    where = StateDir(tmp_path / "state")
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        entered.wait()
        with where.locked():
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with where.locked():
        entered.set()
        time.sleep(0.3)
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]
