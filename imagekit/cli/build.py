"""`imagekit build PIPELINE [--tag REF…]`: one image, one deps and one code layer per step.

stdout carries only the result: one reference per tag (`REF@sha256:…` after --push, else `REF`, the
tag the engine now holds), or, with -o json, one JSON document. The layer table, progress and logs go to
stderr.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from imagekit.build.backend import Backend
from imagekit.build.builder import BuildOptions, BuildResult, build_image
from imagekit.build.engines import BACKENDS, get_backend
from imagekit.build.plan import DEFAULT_LAYER_BUDGET
from imagekit.build.reuse import LayerCache, NoCache
from imagekit.publish.built_push import push_built
from imagekit.publish.cache_image import RegistryCache
from imagekit.publish.image_push import Compression
from imagekit.publish.publisher import Published
from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform
from imagekit_core.references import parse_reference
from imagekit_core.spec import PipelineSpec, load_pipeline
from imagekit_core.spec.quantity import human_size

from .build_platforms import build_each, chosen_platforms, name_in_engine, push_each
from .common import OutputFormat, emit_json, emit_text, stderr
from .progress import progress_on
from .push import print_published


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since 1970")
    return int(value)


def image_tags(spec: PipelineSpec, tags: list[str], base: str | None, push: bool) -> list[str]:
    """The --tag values (each checked now, not after the build), or $IMAGEKIT_REPO/<pipeline>:<content key>."""
    if not tags:
        repository = os.environ.get(contract.REPO, "").strip().rstrip("/")
        if not repository:
            raise UsageError(f"build: no --tag and {contract.REPO} is not set (fix: pass --tag REGISTRY/NAME:TAG, "
                             f"or set {contract.REPO}=REGISTRY/PREFIX to tag it REGISTRY/PREFIX/{spec.name}:<content key>)")
        tag = f"{repository}/{spec.name}:{spec.content_key(base)}"
        parse_reference(tag, f"${contract.REPO}", registry=push, digest=False)
        return [tag]
    for tag in tags:
        parse_reference(tag, "--tag", registry=push, digest=False)
    return list(dict.fromkeys(tags))  # a tag given twice is applied once


def parse_labels(labels: list[str]) -> tuple[tuple[str, str], ...]:
    parsed = []
    for label in labels:
        key, equals, value = label.partition("=")
        if not equals or not key.strip():
            raise UsageError(f"--label {label!r}: give KEY=VALUE (fix: e.g. --label org.opencontainers.image.vendor=me)")
        parsed.append((key.strip(), value))
    return tuple(parsed)


def layer_cache(cache_from: list[str], pushed_tags: list[str], no_cache: bool) -> LayerCache:
    """The cache images a build reuses layers from: --cache-from's, else (pushing) the tags it pushes to,
    whose previous image is the natural cache; none with --no-cache. Each REF is checked now."""
    for ref in cache_from:
        parse_reference(ref, "--cache-from", registry=True, digest=True)
    if no_cache:
        return NoCache()
    refs = cache_from or pushed_tags
    return RegistryCache(refs, quiet=not cache_from) if refs else NoCache()


def build_platforms(spec: PipelineSpec, engine: Backend, options: BuildOptions, platforms: tuple[Platform, ...],
                    bases: dict[Platform, str], tags: list[str], push: bool, cache: LayerCache,
                    compression: Compression, output: OutputFormat, cache_to: list[str],
                    metadata_file: Path | None) -> None:
    """--platform: each platform's image, and with --push the index under each tag (and each --cache-to);
    stdout: a reference per tag (REF@sha256:<index digest> after --push, else each platform's tag in the
    engine); --metadata-file: what -o json prints."""
    results = build_each(spec, engine, options, platforms, bases)
    name_in_engine(engine, tags, results)
    indexes = [push_each(engine, results, destination, cache, compression) for destination in tags] if push else []
    cached_to = [push_each(engine, results, destination, cache, compression) for destination in cache_to]
    for each, result in results.items():
        stderr.print(f"built {each}: {result.tag} ({result.image_id[:19]}), {len(result.reused)} layers reused")
    references = [index.reference for index in indexes] or [result.tag for result in results.values()]
    described = {"tags": tags, "references": references,
                 "platforms": {str(each): result.to_json() for each, result in results.items()},
                 "indexes": [index.to_json() for index in indexes],
                 "cache_to": [index.to_json() for index in cached_to]}
    if metadata_file is not None:
        metadata_file.write_text(json.dumps(described, indent=2, sort_keys=True) + "\n")
    if output is OutputFormat.json:
        emit_json(described)
        return
    emit_text("\n".join(references))


def layer_table(result: BuildResult) -> str:
    lines = [f"{'#':>3}  {'layer':<18} {'steps':<24} {'size':>10}  status"]
    for layer in result.layers:
        if layer.kind == "base":
            continue
        if layer.from_registry:
            status = "reused (registry)"
        elif layer.cached:
            status = "reused (cache)"
        elif layer.unchanged:
            status = "rebuilt, same digest"
        else:
            status = "built"
        size = human_size(layer.size) if layer.size is not None else "?"
        steps = ",".join(layer.steps) or "-"
        lines.append(f"{layer.index:>3}  {layer.name:<18} {steps:<24} {size:>10}  {status}  {layer.digest[:19]}")
    return "\n".join(lines)


def reference_lines(tags: list[str], published: list[Published]) -> list[str]:
    """One reference per tag, in the tags' order: `REF@sha256:…` once pushed (what a deploy should pin),
    otherwise the tag itself (the engine holds it)."""
    if published:
        return [pushed.reference for pushed in published]
    return list(tags)


def metadata(result: BuildResult, tags: list[str], published: list[Published]) -> dict[str, Any]:
    """--metadata-file: the build's result, with buildx's key names for what buildx also reports."""
    digest = published[0].digest if published else result.manifest_digest
    references = reference_lines(tags, published)
    return {
        "image.name": ",".join(tags),
        "containerimage.digest": digest,
        "containerimage.config.digest": result.image_id,
        "reference": references[0],  # the first tag's, as `tag`
        "references": references,
        "by_tag": dict(zip(tags, references, strict=True)),
        "tags": tags,
        "digest": digest,
        "image_id": result.image_id,
        "pushed": bool(published),
        "layers": [{"index": layer.index, "name": layer.name, "kind": layer.kind, "steps": layer.steps,
                    "digest": layer.digest, "size": layer.size, "reused": layer.cached or bool(layer.unchanged)}
                   for layer in result.layers],
        "timings": result.timings,
        "labels": result.labels,
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        tag: list[str] = typer.Option([], "--tag", "-t", show_default=False,
                                      help=f"image reference, repeatable: every tag is applied (and pushed) "
                                           f"[default: ${contract.REPO}/<pipeline>:<content key>]"),
        label: list[str] = typer.Option([], "--label", "-l", show_default=False,
                                        help="KEY=VALUE image label, repeatable"),
        metadata_file: Path | None = typer.Option(None, "--metadata-file", show_default=False,
                                                  help="write the result as JSON here: reference, digest, image ID, "
                                                       "layers, timings (as buildx's --metadata-file)"),
        backend: str = typer.Option(os.environ.get(contract.BACKEND, "docker"), "--backend", "-b",
                                    help=f"image engine: {' or '.join(BACKENDS)} (${contract.BACKEND})"),
        base: str = typer.Option(None, "--base", help="base image [default: the pipeline's `base`]"),
        push: bool = typer.Option(False, "--push", help="push every tag to the registry it names"),
        layer_budget: int = typer.Option(DEFAULT_LAYER_BUDGET, "--layer-budget",
                                         help="most layers in the image; above it the smallest steps share layers"),
        version: str = typer.Option(None, "--version", help="org.opencontainers.image.version [default: git describe]"),
        no_cache: bool = typer.Option(False, "--no-cache", help="ignore the engine's and imagekit's caches"),
        python_version: str = typer.Option(None, "--python-version",
                                           help="the base image's Python [default: asked from the image]"),
        no_bytecode: bool = typer.Option(False, "--no-bytecode", help="layers carry no .pyc: steps compile "
                                         "what they import at each start (default: compiled for the image's Python)"),
        cache_from: list[str] = typer.Option([], "--cache-from", show_default=False, metavar="REF",
                                             help="an image in a registry whose layers are reused by key: no step "
                                                  "whose lock matches is resolved or installed, repeatable "
                                                  "[default: the tags, with --push]"),
        cache_to: list[str] = typer.Option([], "--cache-to", show_default=False, metavar="REF",
                                           help="push the image here too, as the cache of later builds "
                                                "(--cache-from REF), repeatable"),
        compression: Compression = typer.Option(Compression.gzip, "--compression",
                                                help="layer compression of what imagekit pushes: gzip (every "
                                                     "engine), or zstd (containerd >= 1.5, Docker >= 23; faster "
                                                     "cold pulls, see docs/build.md)"),
        load: bool = typer.Option(False, "--load", help="with --push: load the image into the engine even if "
                                                        "layers reused from a registry must be downloaded for it"),
        platform: str = typer.Option("", "--platform", show_default=False, metavar="PLATFORMS",
                                     help="linux/amd64, linux/arm64 or both (comma-separated): one image per "
                                          "platform, and with --push one reference for all (an OCI index) "
                                          "[default: the pipeline's `platforms:`, else the base's]"),
        platform_base: list[str] = typer.Option([], "--platform-base", show_default=False, metavar="PLATFORM=REF",
                                                help="the base image for a platform, repeatable [default: the "
                                                     "one `platforms:` names, else --base's image for it]"),
        locked: bool = typer.Option(False, "--locked", help="every step's requirements.lock must be current: "
                                                            "exit 2 naming the step when one is missing or stale, "
                                                            "and write none (CI; as `npm ci`)"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Build PIPELINE into one image: base, per step a deps layer, the pipeline, per step a code layer.

        stdout holds one reference per tag: REF@sha256:… after --push, else REF; the layer table is on stderr.
        SOURCE_DATE_EPOCH fixes every timestamp the engine lets us fix (all of them with buildah).
        """
        spec = load_pipeline(pipeline)
        tags = image_tags(spec, tag, base, push)
        engine = get_backend(backend)
        cache = layer_cache(cache_from, tags if push else [], no_cache)
        for ref in cache_to:
            parse_reference(ref, "--cache-to", registry=True, digest=False)
        options = BuildOptions(tag=tags[0], base=base, layer_budget=layer_budget, timestamp=source_date_epoch(),
                               version=version, no_cache=no_cache, python_version=python_version,
                               labels=parse_labels(label), locked=locked, bytecode=not no_bytecode,
                               cache=cache, fetch_reused=load or not (push or cache_to))
        stderr.print(f"building {spec.name} ({len(spec.steps)} steps) with {engine.name} as {', '.join(tags)}")
        platforms, bases = chosen_platforms(spec, platform, platform_base)
        if platforms:
            build_platforms(spec, engine, options, platforms, bases, tags, push, cache, compression, output, cache_to,
                            metadata_file)
            return
        with progress_on(engine, stderr) as progress:
            result = build_image(spec, engine, options)
            for extra in tags[1:]:
                engine.tag(tags[0], extra)
            progress.name_layers((layer.digest, layer.name) for layer in result.layers)
            published = [push_built(engine, result, destination, cache, compression)
                         for destination in tags] if push else []
            cached_to = [push_built(engine, result, destination, cache, compression) for destination in cache_to]
        if result.shared_steps:
            stderr.print(f"layer budget {result.layer_budget}: {', '.join(result.shared_steps)} share layers")
        stderr.print(f"built {', '.join(tags)} ({result.image_id[:19]}) in {result.timings['total']:.1f}s: "
                     f"{len([layer for layer in result.layers if layer.kind != 'base'])} layers, "
                     f"{len(result.reused)} reused")
        for pushed in published + cached_to:
            print_published(pushed, {layer.digest: layer.name for layer in result.layers})
        if not result.loaded:
            stderr.print(f"not loaded into {engine.name}: its reused layers stay in the registry "
                         "(--load fetches them; pull the reference to run it here)")
        described = metadata(result, tags, published)
        if metadata_file is not None:
            metadata_file.write_text(json.dumps(described, indent=2, sort_keys=True) + "\n")
        if output is OutputFormat.json:
            payload = result.to_json() | {"tags": tags, "reference": described["reference"],
                                          "references": described["references"], "by_tag": described["by_tag"]}
            if published:
                payload["pushed"] = published[0].to_json()
                payload["pushes"] = [pushed.to_json() for pushed in published]
            if cached_to:
                payload["cache_to"] = [pushed.to_json() for pushed in cached_to]
            emit_json(payload)
            return
        stderr.print(layer_table(result), markup=False, highlight=False, soft_wrap=True)
        emit_text("\n".join(reference_lines(tags, published)))
