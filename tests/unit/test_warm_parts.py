"""Warm steps and step kinds, in process: the dispatch bookkeeping, the gates, imagekit-wait, the CPU slots,
the log watch and the exit status read from /proc."""
from __future__ import annotations

import os
import select
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest

from imagekit_core import contract
from imagekit_core.contract import StepKind
from imagekit_core.errors import UsageError
from imagekit_core.spec import PipelineSpec, load_pipeline
from imagekit_core.spec.quantity import format_cpus
from imagekit_runtime.observe.logs import LogWatch
from imagekit_runtime.run.dispatch import Dispatch
from imagekit_runtime.run.slots import Slots, available_cpus, cgroup_cpus, resolve_slots
from imagekit_runtime.states import StepState
from imagekit_runtime.supervise.exit_watch import ExitWatcher, zombie_exit_status
from imagekit_runtime.supervise.gates import Gates, install_wait_program

from .graphs import load_graph, write_step

CHAIN = {"a": ([], ["x"]), "b": (["x"], ["y"]), "c": (["y"], ["z"]), "d": (["z"], ["w"])}


def chain_spec(tmp_path: Path, warm: bool = True, **settings: object) -> PipelineSpec:
    spec = load_graph(tmp_path, CHAIN, **{"parallelism": None, **settings})
    if warm:  # every step but the first warm
        for name in ("b", "c", "d"):
            step_yaml = tmp_path / "steps" / name / "step.yaml"
            step_yaml.write_text(step_yaml.read_text() + "warm: true\n")
        spec = _reload(tmp_path)
    return spec


def _reload(tmp_path: Path) -> PipelineSpec:
    return load_pipeline(tmp_path / "pipeline.yaml")


class States(dict[str, StepState]):
    def __call__(self, name: str) -> StepState:
        return self[name]


# ------------------------------------------------------------------ dispatch
def test_warm_steps_come_in_line_behind_a_started_producer_within_the_warm_slots(tmp_path: Path) -> None:
    spec = chain_spec(tmp_path)
    states = States({name: StepState.WAITING for name in CHAIN})
    dispatch = Dispatch(spec, list(CHAIN), Slots(cpu=1, io=4, warm=2), states)
    assert [dispatch.inputs_committed(n) for n in CHAIN] == [True, False, False, False]
    states["a"] = StepState.READY
    dispatch.runnable("a")
    for name in CHAIN:
        dispatch.maybe_in_line(name)
    assert dispatch.next_warm() == []  # nothing is in line while a has no process
    assert dispatch.next_runnable() == ["a"]
    states["a"] = StepState.RUNNING
    dispatch.started("a")
    assert dispatch.next_warm() == ["b"]
    states["b"] = StepState.WARM
    dispatch.warm.add("b")
    dispatch.started("b")
    assert dispatch.next_warm() == ["c"]  # in line behind a warm producer, and a warm slot is free
    states["c"] = StepState.WARM
    dispatch.warm.add("c")
    dispatch.started("c")
    assert dispatch.next_warm() == []  # two warm slots, both taken
    # a commits: b's inputs are all there; its gate opens once a's cpu slot is free
    assert dispatch.committed("a") == ["b"]
    dispatch.runnable("b")
    assert dispatch.next_runnable() == []  # a still holds the one cpu slot
    states["a"] = StepState.COMMITTED
    dispatch.freed_slot("a")
    assert dispatch.next_runnable() == ["b"]


def test_io_and_cpu_steps_take_slots_of_their_own_kind(tmp_path: Path) -> None:
    for index in range(3):
        write_step(tmp_path / "steps", f"io{index}", "true\n", outputs=[f"p{index}"], extra={"kind": "io"})
    for index in range(2):
        write_step(tmp_path / "steps", f"cpu{index}", "true\n", outputs=[f"q{index}"])
    (tmp_path / "pipeline.yaml").write_text(
        "name: kinds\nsteps: [steps/io0, steps/io1, steps/io2, steps/cpu0, steps/cpu1]\n")
    spec = _reload(tmp_path)
    names = [s.name for s in spec.steps]
    states = States({name: StepState.READY for name in names})
    dispatch = Dispatch(spec, names, Slots(cpu=1, io=2, warm=1), states)
    for name in names:
        dispatch.runnable(name)
    assert dispatch.next_runnable() == ["io0", "io1", "cpu0"]
    assert dispatch.busy == {StepKind.CPU: 1, StepKind.IO: 2}
    for name in ("io0", "io1", "cpu0"):
        states[name] = StepState.RUNNING
    dispatch.freed_slot("io0")
    states["io0"] = StepState.COMMITTED
    assert dispatch.next_runnable() == ["io2"]  # cpu1 still waits for the cpu slot


# --------------------------------------------------------------------- gates
def poll_fifo(path: Path, timeout_ms: int = 0) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return next((mask for _, mask in poller.poll(timeout_ms)), 0)
    finally:
        os.close(fd)


def test_a_gate_turns_readable_when_released_stays_so_and_hangs_up_when_closed(tmp_path: Path) -> None:
    gates = Gates(tmp_path / "gates")
    path = gates.prepare("count")
    assert poll_fifo(path) == 0  # closed: a waiter blocks
    gates.release("count")
    assert poll_fifo(path) & select.POLLIN
    assert poll_fifo(path) & select.POLLIN  # every later wait passes too
    gates.close("count")
    assert not path.exists()
    other = gates.prepare("report")
    fd = os.open(other, os.O_RDONLY | os.O_NONBLOCK)
    try:
        gates.close_all()  # the run stops: a waiter sees a hang-up without data
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        mask = poller.poll(1000)[0][1]
        assert mask & select.POLLHUP and not mask & select.POLLIN
    finally:
        os.close(fd)


def test_imagekit_wait_blocks_until_released_and_fails_when_the_run_stops(tmp_path: Path) -> None:
    wait = install_wait_program(tmp_path / "bin")
    gates = Gates(tmp_path / "gates")
    env = {**os.environ, contract.INPUTS_GATE: str(gates.prepare("count")), contract.STEP: "count"}
    waiter = subprocess.Popen([str(wait)], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    assert waiter.poll() is None  # waiting
    gates.release("count")
    assert waiter.wait(10) == 0
    assert subprocess.run([str(wait)], env=env, timeout=10).returncode == 0  # a second wait passes at once
    env.update({contract.INPUTS_GATE: str(gates.prepare("report")), contract.STEP: "report"})
    stopped = subprocess.Popen([str(wait)], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    gates.close("report")
    assert stopped.wait(10) == 1
    assert stopped.stderr is not None
    assert "the run stopped before the inputs of report were committed" in stopped.stderr.read()
    cold = {key: value for key, value in os.environ.items() if key != contract.INPUTS_GATE}
    assert subprocess.run([str(wait)], env=cold, timeout=10).returncode == 0  # not a warm step: no wait


# --------------------------------------------------------------------- slots
def test_cgroup_cpu_max_and_the_defaults_of_the_slots(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert cgroup_cpus(cpu_max) == Fraction(3, 2)
    assert available_cpus(cpu_max, {}) == 2  # 1.5 CPUs: two slots
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpus(cpu_max) is None
    assert available_cpus(cpu_max, {contract.CPUS: "3"}) == 3  # what deploy render --cpus set
    assert available_cpus(cpu_max, {contract.CPUS: "500m"}) == 1
    assert available_cpus(tmp_path / "absent", {}) == len(os.sched_getaffinity(0))
    with pytest.raises(UsageError):
        available_cpus(cpu_max, {contract.CPUS: "lots"})
    spec = chain_spec(tmp_path / "p", warm=False)
    assert resolve_slots(spec, cpus=3) == Slots(cpu=3, io=12, warm=3)
    assert resolve_slots(spec, cpu_override=2, cpus=3) == Slots(cpu=2, io=8, warm=2)
    tuned = chain_spec(tmp_path / "q", warm=False, parallelism={"cpu": 2, "io": 5}, warm_slots=7)
    assert resolve_slots(tuned, cpus=16) == Slots(cpu=2, io=5, warm=7)


def test_cpus_are_written_as_kubernetes_does() -> None:
    assert [format_cpus(Fraction(n)) for n in (1, 4)] == ["1", "4"]
    assert format_cpus(Fraction(3, 2)) == "1500m"
    assert format_cpus(Fraction(1, 3)) == "334m"


# ------------------------------------------------------------ wake-up sources
def test_the_log_watch_names_the_logs_written(tmp_path: Path) -> None:
    watch = LogWatch(tmp_path / "logs", rest_seconds=0.0, lag_seconds=0.05)
    if watch.fd is None:
        pytest.skip("no inotify here")
    try:
        (tmp_path / "logs" / "count.log").write_text("line\n")
        (tmp_path / "logs" / "notes.txt").write_text("not a log\n")
        assert select.select([watch.fd], [], [], 5)[0]
        watch.read_events()
        # echoed a moment later, not at once (the conductor is free for a step's end meanwhile)
        assert watch.take_changed() == set() and watch.watched_fd() is None
        remaining = watch.rest_remaining()
        assert remaining is not None and 0 < remaining <= 0.05
        time.sleep(remaining)
        assert watch.take_changed() == {"count"}
        assert watch.take_changed() == set()
    finally:
        watch.close()


@pytest.mark.parametrize(("code", "status"), [(0, 0), (3, 3 << 8)])
def test_the_exit_status_of_an_unreaped_process_is_read_from_proc(code: int, status: int) -> None:
    watcher = ExitWatcher()
    child = subprocess.Popen(["sh", "-c", f"exit {code}"])
    try:
        if not watcher.supported:
            pytest.skip("no pidfds here")
        watcher.watch("child", child.pid)
        deadline = time.monotonic() + 10
        while "child" not in watcher.fired() and time.monotonic() < deadline:
            watcher.wait(1.0)
        assert zombie_exit_status(child.pid) == status  # a zombie until reaped
    finally:
        child.wait()
        watcher.close()
    assert zombie_exit_status(child.pid) is None  # reaped: ask supervisord
