"""The pipeline and step specs: the YAML reader, the typed specs, sources and sinks, quantities, and
what a step package and its requirements hold. Loaded once, validated with one line per problem."""
from imagekit_core.spec.load import load_pipeline, load_step
from imagekit_core.spec.types import (
    CHECKPOINT_KEYS,
    DATA_NAME_RE,
    DEFAULT_BASE,
    NAME_RE,
    PARALLELISM_KEYS,
    PIPELINE_KEYS,
    STEP_KEYS,
    VARIABLE_NAME_RE,
    CheckpointSpec,
    Parallelism,
    PipelineSpec,
    StepSpec,
    topological_order,
)

__all__ = ["CHECKPOINT_KEYS", "DATA_NAME_RE", "DEFAULT_BASE", "NAME_RE", "PARALLELISM_KEYS", "PIPELINE_KEYS",
           "STEP_KEYS", "VARIABLE_NAME_RE", "CheckpointSpec", "Parallelism", "PipelineSpec", "StepSpec",
           "load_pipeline", "load_step", "topological_order"]
