#!/bin/sh
# Run imagekit's whole test suite on this machine, installing and starting what it needs first
# (docker engine, buildah, registry on 127.0.0.1:5000, base image): see scripts/bootstrap.sh.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -k checkpoint   # extra arguments go to pytest
#   scripts/test.sh -m "not slow"   # leaves out the tests marked slow (@pytest.mark.slow, 4 s or more each)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export TESTCONTAINERS_RYUK_DISABLED=true
sh scripts/bootstrap.sh
# This checkout must be the one Python imports (an editable install of another clone would shadow it).
if [ "$(python3 -c 'import imagekit_core, imagekit_runtime, os; print(os.path.commonpath([os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))) for m in (imagekit_core, imagekit_runtime)]))' 2>/dev/null)" != "$ROOT" ]; then
    echo "test: installing this checkout (pip install -e '.[test]')" >&2
    python3 -m pip install -q -e "$ROOT[test]" >&2
fi
# The Kruise StatefulSet CRD for the `deploy validate` checks, from the Kruise Go module the local cluster is
# built from (scripts/cluster.sh crd: the cluster's binaries are built first, and cached; root and Go needed).
# Without it those checks are skipped, saying why.
if [ -z "${IMAGEKIT_KRUISE_CRD:-}" ] && [ "$(id -u)" -eq 0 ] && command -v go >/dev/null 2>&1; then
    if crd=$(bash scripts/cluster.sh crd); then
        export IMAGEKIT_KRUISE_CRD="$crd"
    else
        echo "test: no Kruise CRD (scripts/cluster.sh crd failed): the CRD checks are skipped" >&2
    fi
fi
exec python3 -m pytest -q "$@"
