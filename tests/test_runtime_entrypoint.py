"""The image entrypoint (`python3 -m imagekit_runtime run`) as a pod runs it: settings from the environment,
shard from the pod name, and a complete shard that holds instead of exiting."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import write_pipeline, write_step
from imagekit_core import contract


def shard_pipeline(tmp_path):
    write_step(tmp_path / "steps", "which", 'echo "$IMAGEKIT_SHARD_INDEX of $IMAGEKIT_SHARD_COUNT" > "$IMAGEKIT_OUT_WHICH"',
               outputs=["which"])
    return write_pipeline(tmp_path, "shards", ["which"], results=["which"], shards=4)


def pod_env(locations, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEKIT_")}
    env.update({contract.SHM_DIR: str(locations.shm), contract.SSD_DIR: str(locations.ssd),
                contract.PV_DIR: str(locations.pv)}, **extra)
    return env


def test_settings_come_from_the_environment_and_the_pod_name(tmp_path, locations):
    pipeline = shard_pipeline(tmp_path)
    # The ordinal label is missing (empty): the shard comes from the pod name's ordinal.
    env = pod_env(locations, IMAGEKIT_SHARD_INDEX="", IMAGEKIT_POD_NAME="wordfreq-3")
    result = subprocess.run([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Results default to <pv>/results/<shard>/ in a pod.
    assert (locations.pv / "results" / "3" / "which").read_text() == "3 of 4\n"
    assert (locations.ssd / "shards" / "shard-3").is_dir()


def test_shard_outside_the_count_is_refused(tmp_path, locations):
    pipeline = shard_pipeline(tmp_path)
    env = pod_env(locations, IMAGEKIT_SHARD_INDEX="7")
    result = subprocess.run([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "shard index 7 is outside 0..3" in result.stderr


def test_complete_shard_holds_until_sigterm(tmp_path, locations):
    pipeline = shard_pipeline(tmp_path)
    env = pod_env(locations, IMAGEKIT_SHARD_INDEX="1", IMAGEKIT_HOLD_WHEN_COMPLETE="1")
    runner = subprocess.Popen([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline)], env=env,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (locations.pv / contract.RESULTS_DIR_NAME / "1" / contract.COMPLETION_MARKER).exists():
        time.sleep(0.05)
    time.sleep(0.5)
    assert runner.poll() is None  # still up although the shard is complete
    runner.send_signal(signal.SIGTERM)
    _out, err = runner.communicate(timeout=20)
    assert runner.returncode == 0
    assert "holding until stopped" in err


def test_supervisord_launcher_resolves_rpcinterface_specs_without_pkg_resources():
    # Debian's supervisor 4.2 resolves `[rpcinterface:x] supervisor.rpcinterface_factory` through
    # pkg_resources.EntryPoint; the launcher supplies that with importlib.
    from supervisor.rpcinterface import make_main_rpcinterface

    from imagekit_runtime.supervise.supervisord import EntryPoint, resolve_spec

    assert EntryPoint.parse("x=supervisor.rpcinterface:make_main_rpcinterface").resolve() is make_main_rpcinterface
    assert resolve_spec("os.path:join") is os.path.join
