"""The build path: pipeline spec → layer plan → engine (docker, buildah) → image; docs/build.md tells how."""
