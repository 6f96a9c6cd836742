"""Locks (imagekit/build/lock.py, deps.py), in process, with pip resolving from a directory of wheels:
-r/-c includes are part of the lock's input, a lock is reused while its input and target hold and
written again when they change, and the deps tree is installed from the lock with its hashes checked."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from imagekit.build.deps import install_step_requirements, step_lock
from imagekit.build.lock import current_lock, format_lock, input_digest, parse_pins
from imagekit.build.wheels import PythonTarget, lock_file_name
from imagekit_core.errors import SpecError
from imagekit_core.spec import load_step
from imagekit_core.spec.requirements import requirement_files

from .wheelfactory import make_wheel

TARGET = PythonTarget(version="3.11")
LOCK_NAME = lock_file_name(None)  # linux/amd64's


UV = shutil.which("uv") or os.environ.get("IMAGEKIT_TEST_UV")


@pytest.fixture(params=["pip", "uv"])
def index(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only this directory of wheels is an index; locks resolve with pip, or with uv when it is installed
    (IMAGEKIT_TEST_UV: a uv binary to use); a cache of our own."""
    if request.param == "uv" and not UV:
        pytest.skip("uv is not installed (IMAGEKIT_TEST_UV=/path/to/uv runs these with it)")
    wheels = tmp_path / "index"
    make_wheel(wheels, "alpha", "1.0", licence=("License-Expression", "MIT"))
    make_wheel(wheels, "alpha", "2.0", licence=("License-Expression", "MIT"))
    make_wheel(wheels, "beta", "0.3", requires=("alpha",),
               licence=("Classifier", "License :: OSI Approved :: BSD License"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("IMAGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    path = "/usr/bin:/bin"  # without uv: pip resolves
    if request.param == "uv":
        assert UV is not None
        path = f"{Path(UV).parent}:{path}"
    monkeypatch.setenv("PATH", path)
    return wheels


def step_with(tmp_path: Path, requirements: str, **files: str) -> Path:
    """A step package with requirements.txt and the given files (name: text; `/` in names allowed)."""
    step = tmp_path / "step"
    step.mkdir(exist_ok=True)
    (step / "step.yaml").write_text("name: s\ncommand: [python3, main.py]\nrequirements: requirements.txt\n")
    (step / "main.py").write_text("")
    (step / "requirements.txt").write_text(requirements)
    for name, text in files.items():
        (step / name).parent.mkdir(parents=True, exist_ok=True)
        (step / name).write_text(text)
    return step


def test_includes_are_followed_once_and_are_part_of_the_input(tmp_path: Path) -> None:
    step = step_with(tmp_path, "-r more/base.txt\n-c constraints.txt\nbeta\n",
                     **{"more/base.txt": "--requirement=../constraints.txt\nalpha\n", "constraints.txt": "alpha<2\n"})
    names = [path.relative_to(step).as_posix() for path in requirement_files(step / "requirements.txt")]
    assert names == ["requirements.txt", "more/base.txt", "constraints.txt"]
    before = input_digest(step / "requirements.txt")
    (step / "constraints.txt").write_text("alpha<1.5\n")
    assert input_digest(step / "requirements.txt") != before


def test_lock_format_round_trips() -> None:
    pins = parse_pins("beta==0.3 \\\n    --hash=sha256:" + "b" * 64 + "\nalpha==1.0 --hash=sha256:" + "a" * 64 + "\n")
    assert [(pin.name, pin.version, pin.hashes) for pin in pins] == [("beta", "0.3", ("b" * 64,)),
                                                                     ("alpha", "1.0", ("a" * 64,))]
    text = format_lock(Path("requirements.txt"), TARGET, "sha256:" + "0" * 64, list(pins))
    assert [pin.name for pin in parse_pins(text)] == ["alpha", "beta"]
    assert text.splitlines()[0].endswith(f"for {TARGET.key()}; commit this file.")


def test_a_lock_is_written_reused_and_renewed(index: Path, tmp_path: Path) -> None:
    step_dir = step_with(tmp_path, "-c constraints.txt\nbeta\n", **{"constraints.txt": "alpha<2\n"})
    step = load_step(step_dir)
    first = install_step_requirements(step, TARGET)
    lock_text = (step_dir / LOCK_NAME).read_text()
    assert {(pin.name, pin.version) for pin in first.lock.pins} == {("alpha", "1.0"), ("beta", "0.3")}
    assert all(len(pin.hashes) == 1 for pin in first.lock.pins)
    assert sorted(path.name for path in first.unpacked().glob("*.dist-info")) == ["alpha-1.0.dist-info", "beta-0.3.dist-info"]
    assert sorted(first.wheels.metadata()) == ["alpha-1.0.dist-info", "beta-0.3.dist-info"]
    assert current_lock(step, TARGET) is not None
    # A newer alpha on the index changes nothing while the lock holds: the lock decides.
    make_wheel(index, "alpha", "1.4")
    again = install_step_requirements(step, TARGET, refresh=True)
    assert (step_dir / LOCK_NAME).read_text() == lock_text and again.wheels.name == first.wheels.name
    # Another Python: locked again for it.
    assert current_lock(step, PythonTarget(version="3.12")) is None
    # An included file changed: the lock is stale, the build locks again.
    (step_dir / "constraints.txt").write_text("alpha<1.2\n")
    assert current_lock(step, TARGET) is None
    (step_dir / "constraints.txt").write_text("alpha<3\n")
    renewed = install_step_requirements(step, TARGET)
    assert {(pin.name, pin.version) for pin in renewed.lock.pins} == {("alpha", "2.0"), ("beta", "0.3")}
    assert renewed.wheels.name != first.wheels.name


def test_a_lock_whose_hash_does_not_match_its_wheel_is_refused(index: Path, tmp_path: Path) -> None:
    step_dir = step_with(tmp_path, "alpha==1.0\n")
    step = load_step(step_dir)
    lock = step_lock(step, TARGET, tmp_path / "unused")
    (step_dir / LOCK_NAME).write_text(lock.text.replace(lock.pins[0].hashes[0], "0" * 64))
    with pytest.raises(SpecError, match="does not match the hash"):
        install_step_requirements(step, TARGET)


def test_the_sbom_lists_the_tree_with_versions_hashes_and_licences(index: Path, tmp_path: Path) -> None:
    step = load_step(step_with(tmp_path, "beta\n"))
    deps = install_step_requirements(step, TARGET)
    document = json.loads((deps.sbom / "s.cdx.json").read_text())
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    components = {c["name"]: c for c in document["components"]}
    assert {name: c["version"] for name, c in components.items()} == {"alpha": "2.0", "beta": "0.3"}
    hashes = {pin.name: pin.hashes[0] for pin in deps.lock.pins}
    assert components["alpha"]["hashes"] == [{"alg": "SHA-256", "content": hashes["alpha"]}]
    assert components["alpha"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert components["beta"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert components["beta"]["purl"] == "pkg:pypi/beta@0.3"
    # Deterministic: the same tree gives the same bytes (so the same deps layer).
    assert install_step_requirements(step, TARGET, refresh=True).sbom == deps.sbom


def test_locked_refuses_a_missing_or_stale_lock_and_writes_none(index: Path, tmp_path: Path) -> None:
    """`build --locked` (as `npm ci`): the lock must stand as committed; nothing is resolved or written."""
    step = load_step(step_with(tmp_path, "alpha==1.0\n"))
    with pytest.raises(SpecError, match=r"requirements.lock: step s: missing, or stale.*imagekit lock PIPELINE"):
        step_lock(step, TARGET, tmp_path / "wheels", locked=True)
    assert not (step.directory / LOCK_NAME).exists()
    step_lock(step, TARGET, tmp_path / "wheels")  # written by a build without --locked
    written = (step.directory / LOCK_NAME).read_text()
    assert step_lock(step, TARGET, tmp_path / "wheels", locked=True).text == written  # current: used as it is
    (step.directory / "requirements.txt").write_text("alpha==2.0\n")
    with pytest.raises(SpecError, match="stale"):
        step_lock(load_step(step.directory), TARGET, tmp_path / "wheels", locked=True)
    assert (step.directory / LOCK_NAME).read_text() == written
    with pytest.raises(SpecError, match="stale"):  # a lock for another Python is stale too
        step_lock(step, PythonTarget(version="3.12"), tmp_path / "wheels", locked=True)


def test_each_platform_has_a_lock_of_its_own_beside_the_others(index: Path, tmp_path: Path) -> None:
    step_dir = step_with(tmp_path, "beta\n")
    step = load_step(step_dir)
    amd64 = install_step_requirements(step, TARGET)
    arm64_target = PythonTarget(version="3.11", machine="aarch64")
    arm64 = install_step_requirements(step, arm64_target)
    assert amd64.lock.path.name == "requirements.lock"
    assert arm64.lock.path.name == "requirements.linux-arm64.lock"
    assert arm64.lock.text.splitlines()[0].endswith(f"for {arm64_target.key()}; commit this file.")
    # Locking for arm64 left amd64's lock as it was: both are current, each for its own platform.
    assert current_lock(step, TARGET) == amd64.lock and current_lock(step, arm64_target) == arm64.lock


def test_a_requirement_with_no_wheel_for_a_platform_is_refused_naming_step_package_and_platform(
        index: Path, tmp_path: Path) -> None:
    make_wheel(index, "gamma", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")  # x86 only
    step = load_step(step_with(tmp_path, "gamma\n"))
    assert install_step_requirements(step, TARGET).lock.pins[0].name == "gamma"  # there is one for x86_64
    with pytest.raises(SpecError) as refused:
        install_step_requirements(step, PythonTarget(version="3.11", machine="aarch64"))
    message = str(refused.value)
    assert "\n" not in message and "step 's'" in message and "'gamma'" in message and "linux/arm64" in message
    assert not (step.directory / "requirements.linux-arm64.lock").exists()
