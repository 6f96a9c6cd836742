"""Check rendered (or hand-edited) manifests before a cluster sees them.

Five layers, each named in every problem it reports:
  kruise-crd        the Advanced StatefulSet against the OpenKruise CRD's openAPIV3Schema
                    (`schemas.py`; runs when the CRD is given, see `schemas.kruise_schema`)
  kubernetes-X.Y    every resource, pod template and claim template against the core schemas
  kruise-webhook    what Kruise's validating webhook refuses and no schema can say  (webhook_rules.py)
  kubernetes-api    what the API server refuses beyond the schema                   (api_rules.py)
  imagekit          the runtime's contract: shard identity, shm within the memory limit,
                    checkpoints on durable mounts, a locked-down container         (imagekit_rules.py)
"""
from .api_rules import claim_rules, metadata_rules, pod_spec_rules, statefulset_api_rules, storage_class_rules
from .dispatch import check_rendering, validate_rendering
from .imagekit_rules import imagekit_rules, pipeline_container, workload_ordinals
from .report import ManifestsInvalid, Problem, ValidationReport
from .webhook_rules import kruise_defaults, kruise_webhook_rules

__all__ = [
    "ManifestsInvalid", "Problem", "ValidationReport", "check_rendering", "claim_rules", "imagekit_rules",
    "kruise_defaults", "kruise_webhook_rules", "metadata_rules", "pipeline_container", "pod_spec_rules",
    "statefulset_api_rules", "storage_class_rules", "validate_rendering", "workload_ordinals",
]
