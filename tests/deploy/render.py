"""The Kubernetes manifests as kubectl renders them: one list of objects per overlay."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("gpu", "cpu", "try")


def kubectl() -> str:
    """$BSHMD_KUBECTL, else the kubectl on PATH (Debian's kubernetes-client, scripts/setup --dev).

    The overlays are written for the oldest kubectl they must render with, Debian 12's 1.20
    (kustomize v2.0.3); a newer one renders them too, so whichever is on PATH will do.
    """
    named = os.environ.get("BSHMD_KUBECTL")
    if named:
        return named
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is missing: run scripts/setup --dev (Debian's kubernetes-client)")
    return found


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run([kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay) if doc["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(overlay, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, (overlay, kind, name)
    return found[0]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay) if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
