#!/bin/sh
# Lint imagekit: ruff (style, imports, bugbear, complexity) and mypy (types), both configured in
# pyproject.toml. Installs the tools of the `lint` extra first when one is missing (quietly, to stderr).
# Exits non-zero on any finding; runs both tools either way, so one run shows everything.
#
#   scripts/lint.sh                 # the whole repository, from any directory
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# The lint extra of pyproject.toml, less what is installed already.
missing=$(python3 - <<'EOF'
import re
import tomllib
from importlib import metadata

with open("pyproject.toml", "rb") as project:
    wanted = tomllib.load(project)["project"]["optional-dependencies"]["lint"]
for requirement in wanted:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        print(requirement)
EOF
) || { echo "lint: cannot read the lint extra from pyproject.toml" >&2; exit 3; }
if [ -n "$missing" ]; then
    echo "lint: installing $(echo "$missing" | tr '\n' ' ')" >&2
    # shellcheck disable=SC2086  # one argument per requirement
    python3 -m pip install -q $missing >&2 || { echo "lint: could not install the lint tools" >&2; exit 3; }
fi

status=0
echo "lint: ruff check" >&2
python3 -m ruff check --quiet . || status=1
echo "lint: mypy" >&2
python3 -m mypy || status=1
exit "$status"
