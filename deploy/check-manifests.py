#!/usr/bin/env python3
"""Checks deploy/kubernetes/*.yaml against the gateway itself.

For every ConfigMap that carries a gateway.toml:
  * `clever-gateway check` accepts that gateway.toml (written to a temporary file);
  * a Deployment mounts that ConfigMap where its gateway container's --config points;
  * the config's client_secret_file is a file of a mounted Secret defined in the manifests;
  * the probes use /_gateway/readyz and /_gateway/healthz on a declared container port;
  * the container runs as non-root with a read-only root file system and no capabilities;
  * with the in-memory session store, the Deployment has exactly one replica.

When the kubernetes-validate package is importable, every object is also validated against the
Kubernetes schemas (strict: unknown fields are errors); otherwise that step is skipped with a note.

Usage: deploy/check-manifests.py [--bin PATH] [MANIFEST ...]
  --bin   the clever-gateway binary (default: $CLEVER_GATEWAY_BIN, else
          $CARGO_TARGET_DIR/debug/clever-gateway, else target/debug/clever-gateway)
Exit status: 0 when everything passes, 1 otherwise. Needs PyYAML; Python 3.11+ (tomllib).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - environment problem, reported plainly
    sys.exit("check-manifests: PyYAML is missing: python3 -m pip install pyyaml")

REPO = Path(__file__).resolve().parent.parent


def default_bin() -> str:
    if os.environ.get("CLEVER_GATEWAY_BIN"):
        return os.environ["CLEVER_GATEWAY_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "debug" / "clever-gateway")


class Checker:
    def __init__(self, binary: str):
        self.binary = binary
        self.failures: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")

    def run(self, path: Path) -> None:
        with path.open(encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        by_kind: dict[str, dict[str, dict]] = {}
        for d in docs:
            by_kind.setdefault(d.get("kind", "?"), {})[d["metadata"]["name"]] = d
        configmaps = by_kind.get("ConfigMap", {})
        secrets = by_kind.get("Secret", {})
        deployments = by_kind.get("Deployment", {})

        checked = 0
        for cm_name, cm in configmaps.items():
            toml_text = (cm.get("data") or {}).get("gateway.toml")
            if toml_text is None:
                continue
            checked += 1
            where = f"{rel}: ConfigMap {cm_name}"
            self.gateway_check(where, toml_text)
            try:
                cfg = tomllib.loads(toml_text)
            except tomllib.TOMLDecodeError as e:
                self.fail(where, f"gateway.toml is not TOML: {e}")
                continue
            users = [
                (n, d) for n, d in deployments.items() if mounts_configmap(d, cm_name)
            ]
            if not users:
                self.fail(where, "no Deployment mounts this ConfigMap")
            for dep_name, dep in users:
                self.deployment(
                    f"{rel}: Deployment {dep_name}", dep, cm_name, cfg, configmaps, secrets
                )
        if checked == 0:
            self.fail(str(rel), "no ConfigMap with a gateway.toml key")

        self.schema(path, rel)

    def gateway_check(self, where: str, toml_text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = Path(tmp) / "gateway.toml"
            cfg_path.write_text(toml_text, encoding="utf-8")
            try:
                res = subprocess.run(
                    [self.binary, "check", "--config", str(cfg_path)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            except FileNotFoundError:
                self.fail(where, f"no clever-gateway binary at {self.binary} (cargo build first)")
                return
        if res.returncode != 0:
            self.fail(where, f"clever-gateway check failed:\n{res.stderr}{res.stdout}")
        else:
            print(f"ok   {where}: clever-gateway check")

    def deployment(self, where, dep, cm_name, cfg, configmaps, secrets) -> None:
        failures_before = len(self.failures)
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        store = cfg.get("session", {}).get("store", "memory")
        if store == "memory" and spec.get("replicas", 1) != 1:
            self.fail(where, "replicas must be 1 with the in-memory session store (issue 5)")

        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        gateways = [
            c
            for c in pod["containers"]
            if any(volumes.get(m["name"], {}).get("configMap", {}).get("name") == cm_name
                   for m in c.get("volumeMounts", []))
        ]
        if len(gateways) != 1:
            self.fail(where, f"expected one container mounting ConfigMap {cm_name}, found {len(gateways)}")
            return
        c = gateways[0]
        where = f"{where} container {c['name']}"
        keys = {("configMap", n): set(o.get("data") or {}) for n, o in configmaps.items()}
        keys.update(
            (("secret", n), set(o.get("data") or {}) | set(o.get("stringData") or {}))
            for n, o in secrets.items()
        )
        files = mounted_files(c, volumes, keys)

        args = list(c.get("command", [])) + list(c.get("args", []))
        config_path = arg_value(args, "--config")
        if config_path is None:
            self.fail(where, "no --config argument")
        elif files.get(config_path) != ("configMap", cm_name, "gateway.toml"):
            self.fail(where, f"--config {config_path} is not the ConfigMap's gateway.toml as mounted")

        secret_file = cfg.get("clever", {}).get("client_secret_file")
        if secret_file is not None:
            src = files.get(secret_file)
            if src is None or src[0] != "secret":
                self.fail(where, f"client_secret_file {secret_file} is not a mounted Secret file")
            else:
                _, secret_name, key = src
                secret = secrets.get(secret_name)
                if secret is None:
                    self.fail(where, f"Secret {secret_name} is not defined in the manifests")
                elif key not in {**secret.get("data", {}), **secret.get("stringData", {})}:
                    self.fail(where, f"Secret {secret_name} has no key {key}")

        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe, want in (("readinessProbe", "/_gateway/readyz"), ("livenessProbe", "/_gateway/healthz")):
            get = (c.get(probe) or {}).get("httpGet")
            if not get:
                self.fail(where, f"no {probe} with httpGet")
                continue
            if get.get("path") != want:
                self.fail(where, f"{probe} path is {get.get('path')!r}, expected {want}")
            port = get.get("port")
            if port not in ports and port not in ports.values():
                self.fail(where, f"{probe} port {port!r} is not a declared container port")

        psc = pod.get("securityContext", {})
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            self.fail(where, "runAsNonRoot is not set")
        if not sc.get("readOnlyRootFilesystem"):
            self.fail(where, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.fail(where, "allowPrivilegeEscalation is not false")
        if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
            self.fail(where, "capabilities do not drop ALL")
        if not c.get("resources", {}).get("limits", {}).get("memory"):
            self.fail(where, "no memory limit")
        if len(self.failures) == failures_before:
            print(f"ok   {where}: mounts, secret, probes, security context")

    def schema(self, path: Path, rel) -> None:
        try:
            import kubernetes_validate  # noqa: F401  (optional, large: bundles every schema)
        except ImportError:
            print(f"note {rel}: Kubernetes schema validation skipped (pip install kubernetes-validate)")
            return
        res = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(path)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            self.fail(str(rel), f"Kubernetes schema validation failed:\n{res.stdout}{res.stderr}")
        else:
            print(f"ok   {rel}: Kubernetes schemas (strict)")


def mounts_configmap(dep: dict, cm_name: str) -> bool:
    pod = dep["spec"]["template"]["spec"]
    return any(v.get("configMap", {}).get("name") == cm_name for v in pod.get("volumes", []))


def mounted_files(
    container: dict, volumes: dict, keys: dict[tuple[str, str], set[str]]
) -> dict[str, tuple[str, str, str]]:
    """Maps each file path visible in the container to (kind, object name, key)."""
    out: dict[str, tuple[str, str, str]] = {}
    for m in container.get("volumeMounts", []):
        v = volumes.get(m["name"], {})
        for kind, name_field in (("configMap", "name"), ("secret", "secretName")):
            src = v.get(kind)
            if src is None:
                continue
            items = src.get("items")
            if items:
                pairs = [(i["key"], i["path"]) for i in items]
            else:
                # Without items, every key of the object appears as a file of its own name.
                pairs = [(key, key) for key in keys.get((kind, src[name_field]), ())]
            for key, rel in pairs:
                out[posixpath.join(m["mountPath"], rel)] = (kind, src[name_field], key)
    return out


def arg_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("manifests", nargs="*", type=Path)
    a = ap.parse_args()
    manifests = a.manifests or sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
    if not manifests:
        print("check-manifests: no manifests found", file=sys.stderr)
        return 1
    checker = Checker(a.bin)
    for m in manifests:
        checker.run(m.resolve())
    for f in checker.failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
