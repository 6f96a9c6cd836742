"""`imagekit run PIPELINE --platform P`, P not this machine's: the run, in the pipeline's image for P, emulated.

A run on this machine starts the steps as its own processes, which can only be this machine's platform's.
For another, the same run goes into one container of the image built for P (the engine's TAG-<arch> of a
`build --platform`, or P's image in the index a registry holds, pulled by digest: the resolution `pod up
--platform` uses), started with `--platform P` (qemu runs it). What the run keeps is where a run here keeps
it: the results, SSD and PV directories (resolved as for a run on this machine) are bind-mounted at the
same paths and handed to the image's entrypoint with the run's other flags, so a crash resumes from the
same checkpoints and the results land where `imagekit run` puts them. The steps' data in flight is in the
container's own /dev/shm, as large as the pipeline's `shm`. The container runs as the calling user, so
what it writes is theirs.
"""
from __future__ import annotations

import os
from pathlib import Path

from imagekit.publish.index_read import platform_reference
from imagekit_core import proc
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform
from imagekit_core.spec import PipelineSpec
from imagekit_deploy.emulator.engine import Engine
from imagekit_deploy.emulator.platform_images import platform_image
from imagekit_runtime.run.flags import RunFlags
from imagekit_runtime.run.options import RunOptions
from imagekit_runtime.run.settings import resolve_options

from .common import stderr


def passed_flags(options: RunOptions) -> list[str]:
    """The run's flags as the image's entrypoint takes them, the directories as resolved here."""
    layout, flags = options.layout, options.flags
    argv = ["--results", str(layout.results_dir), "--shard-index", str(options.shard_index),
            "--shard-count", str(options.shard_count)]
    if layout.ssd_dir is None and layout.pv_dir is None:
        argv.append("--no-checkpoints")
    for flag, directory in (("--ssd", layout.ssd_dir), ("--pv", layout.pv_dir)):
        if directory is not None:
            argv += [flag, str(directory)]
    for param in flags.param:
        argv += ["--param", param]
    if flags.parallelism is not None:
        argv += ["--parallelism", str(flags.parallelism)]
    argv += [switch for switch, given in (("--force", flags.force), ("--shm-soft", flags.shm_soft)) if given]
    return [*argv, "--output", flags.output]


def docker_run_argv(spec: PipelineSpec, options: RunOptions, image: str, platform: Platform) -> list[str]:
    """`docker run` of image for platform with the run's directories mounted where they are here."""
    layout = options.layout
    mounts = [directory for directory in (layout.results_dir, layout.ssd_dir, layout.pv_dir) if directory is not None]
    argv = ["docker", "run", "--rm", "--platform", str(platform), "--shm-size", str(spec.shm_bytes),
            "--user", f"{os.getuid()}:{os.getgid()}"]
    for directory in dict.fromkeys(mounts):
        argv += ["--volume", f"{directory}:{directory}"]
    return [*argv, image, *passed_flags(options)]


def run_in_image(spec: PipelineSpec, flags: RunFlags, platform: Platform, image: str | None) -> int:
    """Run the pipeline in its image for platform; the run's exit code (the image's entrypoint's)."""
    if image is None:
        raise UsageError(f"--platform {platform}: the run goes into the pipeline's image for {platform}, and no "
                         f"--image names it (fix: --image REF, the --tag of `imagekit build --platform {platform}`, "
                         "or the reference it pushed)")
    if flags.metrics:
        raise UsageError(f"--metrics with --platform {platform}: the run is in a container whose ports are not "
                         "published (fix: leave out --metrics, or run the image as pods: `imagekit pod up --platform`)")
    options = resolve_options(spec, flags)
    chosen = platform_image(image, platform, Engine(), platform_reference)
    for flag, directory in (("--results", options.layout.results_dir), ("--ssd", options.layout.ssd_dir),
                            ("--pv", options.layout.pv_dir)):
        if directory is None:
            continue
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{flag} {directory}: can't be made ({exc.strerror}) (fix: {flag} DIR, a directory "
                             "you can write)") from None
    stderr.print(f"running {spec.name} shard {options.shard_index} in {chosen} ({platform}, emulated)", markup=False)
    return proc.run(docker_run_argv(spec, options, chosen, platform), capture=False, check=False).returncode
