"""`imagekit build --platform linux/amd64,linux/arm64`: one image per platform, and with --push one reference
(an OCI image index) that serves them all.

The platforms are `--platform`'s, else the pipeline's `platforms:`. Each is an ordinary build on that
platform's base (`--platform-base PLATFORM=REF`, else the one `platforms:` names for it, else `--base` or
`base:`, picking the platform's image when it is a multi-platform image in a registry): its steps'
dependencies come from that platform's lock and wheels, and its layers that do not depend on the platform
are the same bytes, so the same blobs. In the engine each platform's image goes by TAG-<architecture>, and
TAG names them as far as the engine can (buildah: a manifest list; Docker: this machine's platform's image);
pushed, each platform's image goes by TAG-<architecture> and the index by TAG.
"""
from __future__ import annotations

from dataclasses import replace

from imagekit.build.backend import Backend
from imagekit.build.builder import BuildOptions, BuildResult, build_image
from imagekit.build.lock import lock_path
from imagekit.build.reuse import LayerCache
from imagekit.publish.built_push import push_built
from imagekit.publish.image_push import Compression
from imagekit.publish.index_push import PublishedIndex, push_index
from imagekit.publish.index_read import PlatformMismatch, platform_reference
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, parse_platform, parse_platforms, platform_tag
from imagekit_core.references import parse_reference
from imagekit_core.spec import PipelineSpec

from .common import stderr


def parse_platform_bases(values: list[str]) -> dict[Platform, str]:
    """--platform-base PLATFORM=REF, repeatable."""
    bases: dict[Platform, str] = {}
    for value in values:
        name, sep, reference = value.partition("=")
        if not sep or not reference:
            raise UsageError(f"--platform-base {value!r}: give PLATFORM=REF (fix: e.g. --platform-base "
                             "linux/arm64=imagekit/debian-python:bookworm-arm64)")
        parse_reference(reference, "--platform-base")
        bases[parse_platform(name, "--platform-base")] = reference
    return bases


def chosen_platforms(spec: PipelineSpec, platform: str, platform_base: list[str]) -> tuple[
        tuple[Platform, ...], dict[Platform, str]]:
    """The platforms to build for and the bases named for them: the flags over the pipeline's `platforms:`;
    none (a build for the base's platform) when neither names one."""
    named = {entry.platform: entry.base for entry in spec.platforms if entry.base is not None}
    bases = named | parse_platform_bases(platform_base)
    platforms = parse_platforms(platform) if platform else tuple(entry.platform for entry in spec.platforms)
    if platform_base and not platforms:
        raise UsageError("--platform-base names a base, but no platform is built (fix: add --platform, e.g. "
                         "--platform linux/amd64,linux/arm64, or `platforms:` in pipeline.yaml)")
    return platforms, bases


def build_each(spec: PipelineSpec, engine: Backend, options: BuildOptions, platforms: tuple[Platform, ...],
               bases: dict[Platform, str]) -> dict[Platform, BuildResult]:
    """One build per platform, each on its own base. Every platform's lock is part of each step's package, so
    when a build writes a lock (a platform locked for the first time), the platforms built before it are built
    again (from the cache: seconds), and every image holds the same code layers."""
    before = _locks(spec, platforms)
    results = _build_all(spec, engine, options, platforms, bases)
    if _locks(spec, platforms) != before:
        stderr.print("locks written: building each platform again, so each holds every platform's locks")
        results = _build_all(spec, engine, options, platforms, bases)
    return results


def _locks(spec: PipelineSpec, platforms: tuple[Platform, ...]) -> dict[str, str]:
    """Each step's lock for each platform, by path, and its text ("" when there is none yet)."""
    paths = {lock_path(step, platform) for step in spec.packaged_steps if step.requirements is not None
             for platform in platforms}
    return {str(path): path.read_text() if path.is_file() else "" for path in sorted(paths)}


def _build_all(spec: PipelineSpec, engine: Backend, options: BuildOptions, platforms: tuple[Platform, ...],
               bases: dict[Platform, str]) -> dict[Platform, BuildResult]:
    """A base of another platform than it is given for is refused (builder.py, once the base is probed)."""
    results: dict[Platform, BuildResult] = {}
    for platform in platforms:
        base = base_for(platform, bases, options.base, spec.base)
        stderr.print(f"{platform}: building on {base}", markup=False)
        results[platform] = build_image(spec, engine, replace(
            options, tag=platform_tag(options.tag, platform), base=base, platform=platform))
    return results


def name_in_engine(engine: Backend, tags: list[str], results: dict[Platform, BuildResult]) -> None:
    """Each tag names the platforms' images (each also under TAG-<architecture>) as far as the engine can
    (Backend.name_platforms); not when a platform's image was left out of the engine (build --push)."""
    if not all(result.loaded for result in results.values()):
        return
    for tag in tags:
        named = engine.name_platforms(tag, {platform: result.tag for platform, result in results.items()})
        stderr.print(f"{tag} in {engine.name}: {named}", markup=False)


def base_for(platform: Platform, bases: dict[Platform, str], base: str | None, pipeline_base: str) -> str:
    """The base a platform's image is built on: the one named for it (--platform-base, else `platforms:`),
    else `--base` or `base:`. One in a registry is pinned to the platform's image in it, HOST/NAME@sha256:…
    (a multi-platform image's entry for the platform, pulled by digest so that neither platform's replaces the
    other's under one tag); one without the platform is refused here. Any other image serves the platform it
    is of (the build refuses it for another, once probed)."""
    if platform in bases:
        return bases[platform]
    reference, flag = (base, "--base") if base else (pipeline_base, "base:")
    if parse_reference(reference, flag).host is None:
        return reference
    try:
        return platform_reference(reference, platform, flag)
    except PlatformMismatch as mismatch:
        raise UsageError(f"{flag} {reference}: no {platform} image in it ({mismatch.held}) (fix: a base with a "
                         f"{platform} image, or --platform-base {platform}=REF)") from None


def push_each(engine: Backend, results: dict[Platform, BuildResult], destination: str, cache: LayerCache,
              compression: Compression) -> PublishedIndex:
    """Each platform's image under destination-<architecture>, then the index under destination."""
    pushed = {platform: push_built(engine, result, platform_tag(destination, platform), cache, compression)
              for platform, result in results.items()}
    return push_index(destination, pushed)
