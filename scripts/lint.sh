#!/bin/sh
# Lint imagekit: ruff (style, imports, bugbear, complexity) and mypy (types), both configured in
# pyproject.toml. First installs, quietly and by name, whatever mypy needs that is missing: the `lint`
# extra's tools and stubs, and the packages the code imports (dependencies and the `test` extra), never
# imagekit itself. Exits non-zero on any finding; runs both tools either way, so one run shows everything.
#
#   scripts/lint.sh                 # the whole repository, from any directory
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# What pyproject.toml lists for the code, its tests and its linting, less what is installed already.
missing=$(python3 - <<'EOF'
import re
import tomllib
from importlib import metadata

with open("pyproject.toml", "rb") as project:
    declared = tomllib.load(project)["project"]
extras = declared.get("optional-dependencies", {})
wanted = [*declared.get("dependencies", []), *extras.get("test", []), *extras["lint"]]
for requirement in wanted:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        print(requirement)
EOF
) || { echo "lint: cannot read the requirements in pyproject.toml" >&2; exit 3; }
if [ -n "$missing" ]; then
    echo "lint: installing $(echo "$missing" | tr '\n' ' ')" >&2
    # shellcheck disable=SC2086  # one argument per requirement
    python3 -m pip install -q $missing >&2 || { echo "lint: could not install what linting needs" >&2; exit 3; }
fi

status=0
echo "lint: ruff check" >&2
python3 -m ruff check --quiet . || status=1
echo "lint: mypy" >&2
python3 -m mypy || status=1
exit "$status"
