#!/usr/bin/env bash
# Checks everything shipped in deploy/ and docs/examples/ against the built gateway:
#   1. `clever-gateway check` accepts every deploy/examples/*.toml;
#   2. deploy/check-manifests.py: the Kubernetes ConfigMap's gateway.toml passes `check`, and the
#      Deployment's mounts, secret, probes and security context fit it;
#   3. docs/examples/test_whoami.py: the header-reading examples (the PHP one only when php is
#      installed).
# Every step runs; the exit status is non-zero if any failed.
#
# Called by .ci/run after `cargo build`. The binary is $CLEVER_GATEWAY_BIN if set, else
# $CARGO_TARGET_DIR/debug/clever-gateway, else target/debug/clever-gateway.
set -uo pipefail
cd "$(dirname "$0")/.."

bin=${CLEVER_GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/debug/clever-gateway}
if [ ! -x "$bin" ]; then
  echo "deploy/ci-check.sh: no clever-gateway binary at $bin (run cargo build first)" >&2
  exit 1
fi
export CLEVER_GATEWAY_BIN=$bin
# No __pycache__ left in docs/examples/ or deploy/.
export PYTHONDONTWRITEBYTECODE=1

failed=()

echo "== clever-gateway check on deploy/examples/*.toml"
shopt -s nullglob
examples=(deploy/examples/*.toml)
if [ ${#examples[@]} -eq 0 ]; then
  echo "FAIL no deploy/examples/*.toml" >&2
  failed+=("examples")
fi
for f in "${examples[@]}"; do
  if out=$("$bin" check --config "$f" 2>&1); then
    echo "ok   $f"
  else
    echo "FAIL $f" >&2
    echo "$out" >&2
    failed+=("$f")
  fi
done

echo "== Kubernetes manifests (deploy/check-manifests.py)"
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "PyYAML is missing; installing it with pip"
  python3 -m pip install --quiet pyyaml || true
fi
if python3 -c 'import yaml' 2>/dev/null; then
  python3 deploy/check-manifests.py --bin "$bin" || failed+=("deploy/check-manifests.py")
else
  echo "FAIL PyYAML could not be installed (python3 -m pip install pyyaml)" >&2
  failed+=("deploy/check-manifests.py (no PyYAML)")
fi

echo "== docs/examples (python3 -m unittest docs/examples/test_whoami.py)"
python3 -m unittest docs/examples/test_whoami.py || failed+=("docs/examples/test_whoami.py")

if [ ${#failed[@]} -gt 0 ]; then
  echo "deploy/ci-check.sh: ${#failed[@]} failed: ${failed[*]}" >&2
  exit 1
fi
echo "deploy/ci-check.sh: all deploy and docs checks passed"
