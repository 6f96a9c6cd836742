"""Build and push cost: imagekit's per-step layers against a naive single Containerfile, side by side.

For each round, on a fresh copy of pipelines/wordfreq:
  cold      imagekit build with every cache emptied (an engine holding only the base, fresh imagekit cache)
  rebuild   imagekit build after a one-line change in one step's code
  naive     the same two for one hand-written Containerfile that copies all code and then
            installs every step's requirements (the way most Dockerfiles are written)
  push      bytes the second push uploads (after the one-line change), for both
  empty     an empty CI runner (a fresh imagekit cache, the engine holding only the base) after a second
            one-line change: imagekit build --push --cache-from the image pushed before, against the
            same runner's cold build and push, and against the naive build and push there (which,
            with no cache, is its cold build and push)
Even rounds build imagekit's side first, odd rounds the naive side (the cold builds, then the rebuilds).
Prints medians and the ratios the issue sets targets for:
  cold / naive cold     <= 0.5
  rebuild / cold        <= 10 %      rebuild / naive rebuild   <= 1/5
  empty runner: rebuild and push / cold build and push <= 15 %, / naive build and push <= 0.1

    python3 bench/bench_build.py [--rounds 3] [--backend docker|buildah] [--engine private|shared]
                                 [--storage scratch|here] [--registry private|HOST:PORT] [--output json]
Needs what scripts/bootstrap.sh starts (engine, registry, base image). By default the builds run against an
engine of the bench's own that holds only the base at the start of each round (bench/private_engine.py): the
machine's engine usually holds the example's layers already, which would spare a "cold" build applying them.
That engine's storage, the imagekit caches and the naive build's context are on a fresh journaled ext4 made
for the run (bench/scratch_fs.py: the machine's own filesystem may create files at a speed that depends on
what was deleted in the minutes before); --storage here puts them under /var/tmp instead. Each round
records how fast the work directory's filesystem created small files just before the cold builds.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "runtime"))
sys.path.insert(0, str(REPO / "core"))

from imagekit.build.backend import Backend, BuildRequest  # noqa: E402
from imagekit.build.builder import BuildOptions, BuildResult, build_image, probe_target  # noqa: E402
from imagekit.build.engines import get_backend  # noqa: E402
from imagekit.build.runtimebase import core_package, runtime_package  # noqa: E402
from imagekit.build.wheels import pip_command  # noqa: E402
from imagekit.publish.cache_image import RegistryCache  # noqa: E402
from imagekit.publish.image_push import push_image  # noqa: E402
from imagekit.publish.publisher import Published  # noqa: E402
from imagekit.publish.registry import RegistryPublisher  # noqa: E402
from imagekit_core import contract, proc  # noqa: E402
from imagekit_core.spec import load_pipeline  # noqa: E402
from imagekit_core.spec.quantity import human_size  # noqa: E402
from pages import Measured  # noqa: E402
from private_engine import private_engine  # noqa: E402
from private_registry import private_registry  # noqa: E402
from scratch_fs import ScratchUnavailable, files_per_second, journaled_scratch  # noqa: E402

EXAMPLE = REPO / "pipelines" / "wordfreq"
CHANGED_STEP = "count"

NAIVE_CONTAINERFILE = """\
# What a user writes by hand: the runtime and all code copied, then every step's requirements installed
# (pip compiles their bytecode, its default, as imagekit's layers carry bytecode too) and the user created,
# in one image. (No network in the build: wheels come in the context, pip runs from its own wheel.)
FROM {base}
COPY wheels/ /tmp/wheels/
COPY runtime/ {runtime_dir}/
COPY pipeline/ {pipeline_dir}/
RUN PIP="$(ls /tmp/wheels/pip/*.whl)/pip" && {installs} && rm -rf /tmp/wheels \\
    && echo 'imagekit:x:{uid}:' >> /etc/group \\
    && echo 'imagekit:x:{uid}:{uid}::/home/imagekit:/usr/sbin/nologin' >> /etc/passwd \\
    && mkdir -p /home/imagekit {ssd} {pv} \\
    && chown {uid}:{uid} /home/imagekit {ssd} {pv}
ENV PYTHONPATH={runtime_dir} {deps_var}={deps_root} PYTHONDONTWRITEBYTECODE=1
USER {uid}:{uid}
ENTRYPOINT ["python3", "-m", "imagekit_runtime", "run", "{pipeline_file}"]
"""


def change_one_line(pipeline: Path) -> None:
    main = pipeline / "steps" / CHANGED_STEP / "main.py"
    main.write_text(main.read_text() + f"# bench change {uuid.uuid4()}\n")


def naive_context(pipeline: Path, directory: Path, base: str, target_args: list[str]) -> Path:
    """Context of the naive build: the runtime and the pipeline as they are, and the wheels each step
    needs (plus pip's own)."""
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(pipeline, directory / "pipeline")
    for package in (runtime_package(), core_package()):
        shutil.copytree(package, directory / "runtime" / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = directory / "wheels"
    proc.run([*pip_command(), "download", "--no-deps", "--only-binary=:all:", "--dest", wheels / "pip", "pip"])
    spec = load_pipeline(pipeline)
    installs = []
    for step in spec.steps:
        if step.requirements is None:
            continue
        proc.run([*pip_command(), "download", *target_args, "--dest", wheels / step.name, "-r", step.requirements])
        requirements = f"{contract.IMAGE_PIPELINE_DIR}/{step.directory.relative_to(spec.directory)}/{step.requirements.name}"
        installs.append(f"python3 $PIP install --quiet --no-index "  # pip compiles bytecode, as imagekit does
                        f"--find-links /tmp/wheels/{step.name} --target {contract.IMAGE_DEPS_ROOT}/{step.name} "
                        f"-r {requirements}")
    (directory / "Containerfile").write_text(NAIVE_CONTAINERFILE.format(
        base=base, runtime_dir=contract.IMAGE_RUNTIME_DIR, pipeline_dir=contract.IMAGE_PIPELINE_DIR,
        pipeline_file=contract.IMAGE_PIPELINE_FILE, uid=contract.RUNTIME_UID, ssd=contract.DEFAULT_SSD,
        pv=contract.DEFAULT_PV, deps_var=contract.DEPS_ROOT, deps_root=contract.IMAGE_DEPS_ROOT,
        installs=" && ".join(installs)))
    return directory


Result = TypeVar("Result")


def timed(action: Callable[[], Result]) -> tuple[float, Result]:
    """Seconds action took, starting with nothing left for the disk to write: each build writes a few hundred
    MB, and writing back what the one before left would be charged to the next one."""
    os.sync()
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def one_round(backend: Backend, registry: str, work: Path, round_number: int) -> dict[str, float]:
    """One cold build and one rebuild of each side; odd rounds run the naive side first, so that neither
    always follows what the round before deleted (or what the other side just wrote)."""
    pipeline = work / f"round{round_number}" / "wordfreq"
    shutil.copytree(EXAMPLE, pipeline, ignore=shutil.ignore_patterns("__pycache__"))
    run_id = uuid.uuid4().hex[:8]
    imagekit_tag = f"{registry}/bench/imagekit-{run_id}:latest"
    naive_tag = f"{registry}/bench/naive-{run_id}:latest"
    publisher = RegistryPublisher()
    results: dict[str, float] = {"imagekit_first": float(round_number % 2 == 0)}  # 1: imagekit's builds went first
    made: dict[str, str] = {}  # image IDs the rebuilds leave untagged
    untagged_before = backend.untagged()
    cache_dir = work / f"cache{round_number}"  # cold: nothing cached on the host
    os.environ[contract.CACHE_DIR] = str(cache_dir)
    base_id = backend.ensure_image(BASE)
    # The naive side's wheels fit the same target; asked with a cache of its own (imagekit's cold build
    # probes the base itself, with nothing cached).
    os.environ[contract.CACHE_DIR] = str(work / f"naive-cache{round_number}")
    target = probe_target(backend, base_id, None)
    os.environ[contract.CACHE_DIR] = str(cache_dir)
    context = work / f"naive{round_number}"
    results["files_per_s_before_cold"] = files_per_second(work)

    def imagekit_cold() -> None:
        spec = load_pipeline(pipeline)
        seconds, cold = timed(lambda: build_image(spec, backend, BuildOptions(tag=imagekit_tag, no_cache=True,
                                                                              base=BASE)))
        made["imagekit"] = cold.image_id
        results["imagekit_cold_s"] = seconds
        results.update({f"imagekit_cold_{phase}_s": value for phase, value in cold.timings.items()
                        if phase != "total"})
        push_s, pushed = timed(lambda: publisher.publish(backend, imagekit_tag, imagekit_tag))
        # The whole image's blobs: the side that pushes second in a round finds the base's layers there already.
        results["imagekit_first_push_s"], results["imagekit_first_push_bytes"] = push_s, pushed.total_bytes

    def naive_cold() -> None:
        # Fetching the wheels is part of the naive cold build, as resolving them is part of imagekit's.
        prepare_s, _ = timed(lambda: naive_context(pipeline, context, BASE, target.pip_args()))
        request = BuildRequest(context=context, containerfile="Containerfile", tag=naive_tag, no_cache=True)
        build_s, made["naive"] = timed(lambda: backend.build(request))
        results["naive_cold_s"] = prepare_s + build_s
        push_s, pushed = timed(lambda: publisher.publish(backend, naive_tag, naive_tag))
        # The whole image's blobs: the side that pushes second in a round finds the base's layers there already.
        results["naive_first_push_s"], results["naive_first_push_bytes"] = push_s, pushed.total_bytes

    def imagekit_rebuild() -> None:
        spec = load_pipeline(pipeline)
        seconds, rebuilt = timed(lambda: build_image(spec, backend, BuildOptions(tag=imagekit_tag, base=BASE)))
        results["imagekit_rebuild_s"] = seconds
        results["imagekit_rebuilt_layers"] = len([layer for layer in rebuilt.layers if layer.unchanged is False])
        results["imagekit_second_push_bytes"] = publisher.publish(backend, imagekit_tag, imagekit_tag).uploaded_bytes

    def naive_rebuild() -> None:
        shutil.rmtree(context / "pipeline")
        shutil.copytree(pipeline, context / "pipeline")
        request = BuildRequest(context=context, containerfile="Containerfile", tag=naive_tag)
        results["naive_rebuild_s"], _ = timed(lambda: backend.build(request))
        results["naive_second_push_bytes"] = publisher.publish(backend, naive_tag, naive_tag).uploaded_bytes

    def both(imagekit_side: Callable[[], None], naive_side: Callable[[], None]) -> None:
        for build in (imagekit_side, naive_side) if round_number % 2 == 0 else (naive_side, imagekit_side):
            build()

    def imagekit_empty_runner() -> None:
        """A runner that starts empty: the engine holds the base alone, the imagekit cache is new."""
        change_one_line(pipeline)
        backend.remove([imagekit_tag, made["imagekit"], *sorted(backend.untagged() - untagged_before)])
        os.environ[contract.CACHE_DIR] = str(work / f"empty-runner{round_number}")
        spec, cache, tag = load_pipeline(pipeline), RegistryCache([imagekit_tag]), f"{imagekit_tag}-empty"

        def build_and_push() -> tuple[BuildResult, Published | None]:
            built = build_image(spec, backend, BuildOptions(tag=tag, base=BASE, cache=cache, fetch_reused=False))
            assert built.image is not None
            return built, push_image(built.image, tag, cache)

        results["empty_runner_s"], (built, pushed) = timed(build_and_push)
        assert pushed is not None, "every layer of the image has a source"
        results["empty_runner_reused_layers"] = len([layer for layer in built.layers if layer.from_registry])
        results["empty_runner_push_bytes"] = pushed.uploaded_bytes
        os.environ[contract.CACHE_DIR] = str(cache_dir)

    both(imagekit_cold, naive_cold)
    change_one_line(pipeline)
    both(imagekit_rebuild, naive_rebuild)
    imagekit_empty_runner()
    # The cold images too, which the rebuilds left untagged, and the naive build's per-instruction cache
    # images: every image the engine holds slows each of its later calls a little (buildah reads its
    # whole image list each time), so each round starts from the engine as the one before did.
    backend.remove([imagekit_tag, naive_tag, made["imagekit"], made["naive"]])
    backend.remove(sorted(backend.untagged() - untagged_before))
    return results


BASE = os.environ.get("IMAGEKIT_BASE_IMAGE", "imagekit/debian-python:bookworm")
PRIVATE_REGISTRY_PORT = 5150


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="docker", choices=["docker", "buildah"])
    parser.add_argument("--registry", default="private",
                        help="private (default): an empty registry of the bench's own for each round "
                             "(bench/private_registry.py), so a first push sends every layer; or HOST:PORT")
    parser.add_argument("--output", default="text", choices=["text", "json"])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/build.md")
    parser.add_argument("--engine", default="private", choices=["private", "shared"],
                        help="private (default): an engine of the bench's own that holds only the base at the start "
                             "of each round, so cold builds apply every layer (bench/private_engine.py); shared: "
                             "the machine's engine, which may hold the example's layers already")
    parser.add_argument("--storage", default="scratch", choices=["scratch", "here"],
                        help="scratch (default): the engine's storage and the build directories on a fresh journaled "
                             "ext4 made for the run (bench/scratch_fs.py; needs root and a loop device); here: under "
                             "/var/tmp, on the machine's own filesystem")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")

    rounds = []
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-build-", dir="/var/tmp") as outer:
        try:
            with contextlib.ExitStack() as stack:
                work = stack.enter_context(journaled_scratch(Path(outer))) if args.storage == "scratch" \
                    else Path(outer)
                if args.engine == "private":
                    stack.enter_context(private_engine(args.backend, BASE, work / "engine"))
                backend = get_backend(args.backend)
                backend.check()
                # What the engine holds varies between machines and slows every buildah call as it grows: reported.
                untagged_at_start = len(backend.untagged())
                for number in range(args.rounds):
                    print(f"round {number + 1}/{args.rounds} ({args.backend}, {args.engine} engine, "
                          f"{args.storage} storage)", file=sys.stderr)
                    with contextlib.ExitStack() as round_stack:
                        registry = args.registry if args.registry != "private" else round_stack.enter_context(
                            private_registry(work / f"registry{number}", PRIVATE_REGISTRY_PORT + number))
                        rounds.append(one_round(backend, registry, work, number))
        except ScratchUnavailable as exc:
            print(f"bench_build: {exc}", file=sys.stderr)
            return 2
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    ratios = {
        "cold_over_naive_cold": medians["imagekit_cold_s"] / medians["naive_cold_s"],
        "rebuild_over_cold": medians["imagekit_rebuild_s"] / medians["imagekit_cold_s"],
        "rebuild_over_naive_rebuild": medians["imagekit_rebuild_s"] / medians["naive_rebuild_s"],
        "second_push_bytes_over_naive": (medians["imagekit_second_push_bytes"] /
                                         max(medians["naive_second_push_bytes"], 1)),
        "empty_runner_over_cold_push": medians["empty_runner_s"] / (medians["imagekit_cold_s"] +
                                                                    medians["imagekit_first_push_s"]),
        "empty_runner_over_naive": medians["empty_runner_s"] / (medians["naive_cold_s"] +
                                                                medians["naive_first_push_s"]),
    }
    report = {"backend": args.backend, "engine": args.engine, "storage": args.storage,
              "untagged_images_at_start": untagged_at_start,
              "rounds": rounds, "medians": medians, "ratios": ratios,
              "targets": {"cold_over_naive_cold": 0.50, "rebuild_over_cold": 0.10,
                          "rebuild_over_naive_rebuild": 0.20, "empty_runner_over_cold_push": 0.15,
                          "empty_runner_over_naive": 0.10}}
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_build_{args.backend}.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    say = Measured("build", f"build and push ({args.backend})")
    m = medians
    creation = ", ".join(f"{r['files_per_s_before_cold']:,.0f}" for r in rounds)
    say(f"backend {args.backend} ({args.engine} engine, {args.storage} storage), {args.rounds} rounds, medians "
          f"(one-line change in step {CHANGED_STEP!r}); the engine held {untagged_at_start} untagged images at the "
          f"start; the work directory created {m['files_per_s_before_cold']:,.0f} small files/s before a cold build "
          f"(rounds: {creation}):")
    say(f"{'':24}{'imagekit':>14}{'naive':>14}{'ratio':>10}")
    say(f"{'cold build':24}{m['imagekit_cold_s']:>13.1f}s{m['naive_cold_s']:>13.1f}s"
          f"{m['imagekit_cold_s'] / m['naive_cold_s']:>10.2f}")
    say(f"{'rebuild after change':24}{m['imagekit_rebuild_s']:>13.1f}s{m['naive_rebuild_s']:>13.1f}s"
          f"{ratios['rebuild_over_naive_rebuild']:>10.2f}")
    say(f"{'image bytes (compressed)':24}{human_size(int(m['imagekit_first_push_bytes'])):>14}"
          f"{human_size(int(m['naive_first_push_bytes'])):>14}")
    say(f"{'second push uploaded':24}{human_size(int(m['imagekit_second_push_bytes'])):>14}"
          f"{human_size(int(m['naive_second_push_bytes'])):>14}{ratios['second_push_bytes_over_naive']:>10.4f}")
    say(f"imagekit cold / naive cold = {ratios['cold_over_naive_cold']:.2f} (target <= 0.50); "
          f"imagekit rebuild / cold = {ratios['rebuild_over_cold']:.1%} (target <= 10%); "
          f"rebuild / naive rebuild = {ratios['rebuild_over_naive_rebuild']:.2f} (target <= 0.20)")
    say(f"empty runner, one-line change, build + push (--cache-from the image pushed before): "
        f"{m['empty_runner_s']:.1f}s, {m['empty_runner_reused_layers']:.0f} layers reused from the registry, "
        f"{human_size(int(m['empty_runner_push_bytes']))} uploaded")
    say(f"  / that runner's cold build + push ({m['imagekit_cold_s'] + m['imagekit_first_push_s']:.1f}s) = "
        f"{ratios['empty_runner_over_cold_push']:.1%} (target <= 15%); / the naive build + push there "
        f"({m['naive_cold_s'] + m['naive_first_push_s']:.1f}s) = {ratios['empty_runner_over_naive']:.3f} "
        f"(target <= 0.1)")
    if not args.no_write:
        say.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
