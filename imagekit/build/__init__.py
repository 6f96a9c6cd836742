"""The build path: pipeline spec → layer plan → backend (docker, buildah) → image.

backend.py is the contract, docker.py and buildah.py its implementations,
builder.py the engine-agnostic sequence, plan.py the layer layout, wheels.py
the host-side dependency resolution, tarball.py and context.py what engines
are handed, labels.py the image metadata.
"""
