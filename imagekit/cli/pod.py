"""`imagekit pod up|apply|status|logs|kill|down`: the rendered pods on the local Docker engine, with failure
injection and rolling updates."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from imagekit.publish.index_read import platform_reference
from imagekit_core.contract import FAILURE_LEVELS_HELP, FailureLevel
from imagekit_core.errors import PipelineFailed
from imagekit_core.platforms import parse_platform
from imagekit_core.references import unpinned_warning
from imagekit_deploy.emulator.apply import READY_TIMEOUT, PodOptions, UpReport, apply, rendered_images
from imagekit_deploy.emulator.engine import Engine
from imagekit_deploy.emulator.faults import kill
from imagekit_deploy.emulator.observe import pod_logs
from imagekit_deploy.emulator.pods import PodSet, down
from imagekit_deploy.emulator.secrets import parse_secret_flags
from imagekit_deploy.emulator.state import find_state_dir
from imagekit_deploy.emulator.status import Phase, collect, format_status, to_json
from imagekit_runtime.run.settings import parse_params

from .common import OutputFormat, emit_json, emit_text, stderr

pod_app = typer.Typer(
    help="Run the pods of a rendered StatefulSet on the local Docker engine (one sandbox holding shm plus "
         "the pipeline container per ordinal) and inject the four failure levels of docs/contract.md into them.",
    no_args_is_help=True,
)

STATE_HELP = "the set's state directory [default: ./.imagekit-pods/<name>, or the only set there]"


def register(app: typer.Typer) -> None:
    app.add_typer(pod_app, name="pod")


RENDERED_HELP = "a directory written by `imagekit deploy render --out-dir`, or a YAML stream"
STATE_DIR_HELP = "where the set's state, claims and node directories live [default: ./.imagekit-pods/<name>]"
PARAM_HELP = "KEY=VALUE, passed to every pod's runtime [default: the running set's, if any]"
TIMEOUT_HELP = "seconds to wait for each updated pod's new runtime to start"
NETWORK_HELP = ("a Docker network the pods join, e.g. one where an S3 server listens on its gateway "
                "[default: the engine's default network, or the running set's]")
PLATFORM_HELP = ("run the images of this platform (linux/amd64, linux/arm64; another than this machine's under "
                 "emulation): the engine's REF-<arch> of a multi-platform build, else the platform's image of "
                 "REF's index in its registry [default: the rendered images as they are, or the running set's]")
SECRET_HELP = ("NAME=FILE: the Secret NAME that a rendering's envFrom names, as an env file of KEY=VALUE lines; "
               "NAME alone: the host's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (repeatable) "
               "[default: the running set's]")


def _report(report: UpReport, output: OutputFormat) -> None:
    """What happened to each pod: the result, on stdout (JSON with -o json); the hint on stderr."""
    if output is OutputFormat.json:
        emit_json({"state_dir": str(report.state_dir), "name": report.name, "namespace": report.namespace,
                   "revision": report.revision, "pods": report.pods, "not_honoured": report.not_honoured})
    else:
        emit_text("\n".join(f"{pod['pod']}: {pod['action']} (revision {pod['revision']})"
                             + (f": {pod['why']}" if pod.get("why") else "") for pod in report.pods))
    if report.not_honoured:
        stderr.print(f"note: imagekit pod rolls one pod at a time, highest ordinal first; it does not honour "
                     f"{', '.join(report.not_honoured)} (a cluster's controller does)", markup=False)
    stderr.print(f"{report.name}: {len(report.pods)} pod(s) up at revision {report.revision}, state in {report.state_dir}; "
                 f"follow with `imagekit pod status --state-dir {report.state_dir}`")


UP_HELP = ("Create the pods of RENDERED (sandbox, init containers, pipeline container); pods already up are kept, "
           "or rolled to RENDERED's template as `pod apply` does.")
APPLY_HELP = ("Roll the set to RENDERED as its controller would: Kruise InPlaceIfPossible swaps a new image into the "
              "running pod (shm kept, only changed steps run again), any other change recreates the pod (shm lost, "
              "SSD and PV kept); one pod at a time, highest ordinal first. partition, paused, maxUnavailable and "
              "the other rollout fields are left to the real controllers (a note names them). Missing pods "
              "are created.")


def up_or_apply(
    rendered: Path = typer.Argument(..., help=RENDERED_HELP),
    replicas: int | None = typer.Option(None, "--replicas", help="pods to run [default: the rendered replicas]"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    timeout: float = typer.Option(READY_TIMEOUT, "--timeout", help=TIMEOUT_HELP),
    network: str | None = typer.Option(None, "--network", help=NETWORK_HELP),
    secret: list[str] = typer.Option([], "--secret", help=SECRET_HELP),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    require_digest: bool = typer.Option(False, "--require-digest", help="refuse a rendering whose image is given "
                                        "by tag only (without it: a warning)"),
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP, metavar="PLATFORM"),
) -> None:
    """`pod up` and `pod apply`: one roll of the set to RENDERED (they differ only in what their help stresses)."""
    for image in rendered_images(rendered):
        unpinned = unpinned_warning(image, "image", required=require_digest)
        if unpinned:
            stderr.print(f"warning: {rendered}: {unpinned}", markup=False)
    options = PodOptions(params=parse_params(param) if param else None, network=network,
                         secrets=parse_secret_flags(secret) if secret else None,
                         platform=str(parse_platform(platform)) if platform is not None else None)
    _report(apply(rendered, state_dir, replicas, options, timeout, registry=platform_reference), output)


pod_app.command("up", help=UP_HELP)(up_or_apply)
pod_app.command("apply", help=APPLY_HELP)(up_or_apply)


@pod_app.command("status")
def status_command(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_HELP),
    wait: bool = typer.Option(False, "--wait", help="wait until every pod is Complete (exit 1 if one exits "
                              "for good, or on --timeout)"),
    timeout: float = typer.Option(600, "--timeout", help="seconds --wait waits at most"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
) -> None:
    """Each pod's phase, restarts and steps (from the runtime's journal in the pod's shm)."""
    where = find_state_dir(state_dir)
    state = where.load()
    pods = PodSet(where, Engine())
    deadline = time.monotonic() + timeout
    statuses = collect(pods, state)
    while wait and not all(s.phase == Phase.COMPLETE for s in statuses):
        if any(s.phase in (Phase.EXITED, Phase.MISSING) for s in statuses) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        statuses = collect(pods, state)
    if output is OutputFormat.json:
        emit_json({"state_dir": str(where.root), "name": state.name, "namespace": state.namespace,
                   "pods": to_json(statuses)})
    else:
        emit_text(format_status(state, str(where.root), statuses))
    if wait and not all(s.phase == Phase.COMPLETE for s in statuses):
        stuck = ", ".join(f"{s.pod} {s.phase}" for s in statuses if s.phase != Phase.COMPLETE)
        raise PipelineFailed(f"not every pod completed: {stuck} (see `imagekit pod logs POD`)")


@pod_app.command("logs")
def logs_command(
    pod: str = typer.Argument(..., help="the pod's name (e.g. wordfreq-0) or its ordinal"),
    step: str | None = typer.Option(None, "--step", help="that step's own log (kept on the SSD: also after the "
                                    "pod is gone) [default: the pipeline container's output]"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing what is added, until the container stops"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_HELP),
) -> None:
    """The pipeline container's output, or one step's log, as `kubectl logs POD [-f]` prints it."""
    where = find_state_dir(state_dir)
    for text in pod_logs(PodSet(where, Engine()), where.load(), pod, step, follow):
        typer.echo(text, nl=False)


@pod_app.command("kill")
def kill_command(
    ordinal: int = typer.Argument(..., help="the pod's ordinal (= its shard)"),
    level: FailureLevel = typer.Option(..., "--level", help=f"the failure level: {FAILURE_LEVELS_HELP}"),
    step: str | None = typer.Option(None, "--step", help="wait until this step runs, then inject (process: "
                                       "kill this step) [default: process kills any running step]"),
    timeout: float = typer.Option(60, "--timeout", help="seconds to wait for --step to run"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_HELP),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
) -> None:
    """Inject one failure into pod ORDINAL: a step process, the container, the pod (shm lost) or the node (SSD lost too)."""
    where = find_state_dir(state_dir)
    with where.locked():
        state = where.load()
        report = kill(PodSet(where, Engine()), state, ordinal, level.value, step, timeout)
    if output is OutputFormat.json:
        emit_json(report.to_json())
        return
    what = {FailureLevel.PROCESS: f"killed step {report.step} (pid {report.pid}); "
                                  "the container restarts and resumes from shm",
            FailureLevel.CONTAINER: "killed and restarted the pipeline container; shm kept",
            FailureLevel.POD: "removed and recreated the pod; shm lost, SSD kept",
            FailureLevel.NODE: "removed and recreated the pod and its node disk; shm and SSD lost, PV kept"}[level]
    emit_text(f"{report.pod}: {what}")


@pod_app.command("down")
def down_command(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_HELP),
    grace_period: int | None = typer.Option(None, "--grace-period", help="seconds between SIGTERM and SIGKILL "
                                               "[default: the pod's terminationGracePeriodSeconds]"),
    delete_data: bool = typer.Option(False, "--delete-data", help="also delete the claims (PV, SSD) and node "
                                     "directories, i.e. the whole state directory"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
) -> None:
    """Stop and remove every pod of the set. Claims stay (like persistentVolumeClaimRetentionPolicy Retain)."""
    report = down(state_dir, grace_period, delete_data)
    if output is OutputFormat.json:
        emit_json(report)
        return
    kept = "deleted" if delete_data else f"kept in {report['state_dir']} (a later `up` resumes from them)"
    emit_text(f"removed {len(report['removed_pods'])} pod(s); claims and node directories {kept}")
