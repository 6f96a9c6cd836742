"""What validation found and what it checked: problems, one line each, and which layers ran."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagekit_core.errors import ImagekitError

CHECK_KRUISE_CRD = "kruise-crd"
CHECK_WEBHOOK = "kruise-webhook"
CHECK_API = "kubernetes-api"
CHECK_IMAGEKIT = "imagekit"
KUBERNETES_PREFIX = "kubernetes-"
LAYER_NAMES = {
    CHECK_KRUISE_CRD: "Kruise CRD schema",
    CHECK_WEBHOOK: "Kruise webhook rules",
    CHECK_API: "API-server rules",
    CHECK_IMAGEKIT: "imagekit rules",
}
LAYER_ORDER = ("kubernetes", CHECK_KRUISE_CRD, CHECK_WEBHOOK, CHECK_API, CHECK_IMAGEKIT)


def kubernetes_check(version: str) -> str:
    return f"{KUBERNETES_PREFIX}{version}"


def layer_name(check: str) -> str:
    """`kubernetes-1.28` -> `kubernetes 1.28 schemas`; the others by LAYER_NAMES."""
    if check in LAYER_NAMES:
        return LAYER_NAMES[check]
    return f"kubernetes {check.removeprefix(KUBERNETES_PREFIX)} schemas"


def _order(check: str) -> int:
    return LAYER_ORDER.index(check if check in LAYER_ORDER else "kubernetes")


@dataclass(frozen=True)
class Problem:
    file: str
    resource: str  # Kind/name
    path: str
    message: str
    check: str

    def __str__(self) -> str:
        return f"{self.file}: {self.resource}: {self.path}: {self.message} [{self.check}]"


@dataclass
class ValidationReport:
    kubernetes_version: str
    kruise_crd: str | None = None  # the CRD checked against, and its Kruise revision
    problems: list[Problem] = field(default_factory=list)
    checked: list[dict[str, Any]] = field(default_factory=list)  # per resource: file, resource, checks
    not_checked: dict[str, str] = field(default_factory=dict)  # check -> why, and how to run it

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def checks_run(self) -> list[str]:
        return sorted({check for entry in self.checked for check in entry["checks"]}, key=_order)

    def checks_line(self) -> str:
        """One plain line: which layers ran and which did not, e.g. `checked: kubernetes 1.28
        schemas, …; not checked: Kruise CRD schema (give --kruise-crd FILE or IMAGEKIT_KRUISE_CRD)`."""
        line = "checked: " + ", ".join(layer_name(check) for check in self.checks_run)
        skipped = sorted(self.not_checked.items(), key=lambda item: _order(item[0]))
        if skipped:
            line += "; not checked: " + ", ".join(f"{layer_name(check)} ({why})" for check, why in skipped)
        return line

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kubernetes_version": self.kubernetes_version,
            "kruise_crd": self.kruise_crd,
            "problems": [
                {"file": p.file, "resource": p.resource, "path": p.path, "message": p.message, "check": p.check}
                for p in self.problems
            ],
            "checks": self.checks_run,
            "not_checked": self.not_checked,
            "checked": self.checked,
        }


class ManifestsInvalid(ImagekitError):
    """Manifests a cluster would refuse, or that break the runtime's contract."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s); run `imagekit deploy validate` for all)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")
