#!/usr/bin/env bash
# `npm run package:python [OUTDIR]`: the Python wheel, without PyPI. jsii-pacmak's own packaging (`npm run package`)
# builds in an isolated environment with the setuptools and build versions it pins (setuptools~=75.3.2,
# build~=1.5.0), fetched from a package index. This script generates the same sources and builds them with the
# setuptools already installed in the current Python (70.1 or later: bdist_wheel is built in). Run `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
outdir="${1:-dist}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys, setuptools; sys.exit(0 if tuple(map(int, setuptools.__version__.split(".")[:2])) >= (70, 1) else 1)'; then
  echo "package:python needs setuptools 70.1 or later in $("$python" -c 'import sys; print(sys.executable)')" \
    "(found $("$python" -c 'import setuptools; print(setuptools.__version__)' 2>/dev/null || echo none))" >&2
  exit 1
fi
npx jsii-rosetta extract --strict .jsii  # the README examples in Python, for the package description
npx jsii-pacmak --code-only --no-npmignore --rosetta-unknown-snippets fail --targets python --outdir "$outdir"
"$python" -m pip wheel --no-deps --no-build-isolation --no-index --wheel-dir "$outdir/python/wheel" "$outdir/python"
ls "$outdir"/python/wheel/*.whl
