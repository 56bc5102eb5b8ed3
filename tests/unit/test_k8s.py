"""deploy/k8s: both overlays render (tests/kustomize.py, checked against kubectl kustomize where
installed), every object is valid against the bundled Kubernetes JSON schemas (offline), the
workloads are wired as a production platform needs, and every fsml command they run parses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml
from fsml.cli import app

from tests.kustomize import pod_specs, render

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"


@pytest.fixture(scope="module", params=["dev", "prod"])
def overlay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with the prod secrets file filled in from its example."""
    root = tmp_path_factory.mktemp(f"k8s-{request.param}") / "k8s"
    shutil.copytree(K8S, root)
    prod = root / "overlays" / "prod"
    (prod / "secrets.env").write_text((prod / "secrets.env.example").read_text().replace("=\n", "=test\n"))
    return root / "overlays" / request.param


def objects_of(overlay: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(overlay)}


def test_every_object_is_valid_against_the_kubernetes_schemas(overlay: Path) -> None:
    for obj in render(overlay):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: no reference renderer")
def test_renderer_agrees_with_kubectl_kustomize(overlay: Path) -> None:
    done = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(done.stdout) if o}
    mine = objects_of(overlay)
    assert set(mine) == set(theirs)
    for key, obj in mine.items():
        assert json.dumps(obj, sort_keys=True) == json.dumps(theirs[key], sort_keys=True), key


def test_workloads_are_wired_for_production(overlay: Path) -> None:
    objects = objects_of(overlay)
    namespace = f"fsml-{overlay.name}"
    assert ("Namespace", namespace) in objects
    api = objects[("Deployment", "fsml-api")]
    assert api["metadata"]["namespace"] == namespace
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    hpa = objects[("HorizontalPodAutoscaler", "fsml-api")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fsml-api"
    pdb = objects[("PodDisruptionBudget", "fsml-api")]
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    assert objects[("CronJob", "fsml-monitor")]["spec"]["concurrencyPolicy"] == "Forbid"
    redis = objects[("StatefulSet", "fsml-redis")]
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert "--requirepass" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    config = objects[("ConfigMap", "fsml-settings")]["data"]
    assert config["FSML_ENV"] == overlay.name and config["FSML_HOME"] == "/data"
    secret = objects[("Secret", "fsml-secrets")]
    for spec in pod_specs(objects.values()):
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:  # keys come from the Secret, never from the manifests
                    assert ref["name"] == "fsml-secrets" and ref["key"] in secret["data"]
            for mount in c.get("volumeMounts", []):
                if mount["name"] == "home":
                    assert mount["mountPath"] == "/data"
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v
        ]
        assert all(("PersistentVolumeClaim", claim) in objects for claim in claims)
    image = container["image"]
    assert image == ("fsml:dev" if overlay.name == "dev" else "registry.example.com/fsml:0.1.0")


def commands() -> list[list[str]]:
    found = []
    for obj in render(K8S / "overlays" / "dev"):
        for spec in pod_specs([obj]):
            for c in spec["containers"]:
                if c.get("command"):
                    found.append(c["command"] + c.get("args", []))
    return found


@pytest.mark.parametrize("command", [c for c in commands() if c[0] == "fsml"], ids=lambda c: " ".join(c[1:3]))
def test_every_fsml_command_parses(command: list[str]) -> None:
    """Each command and option goes through the CLI's own parser, values included."""
    group = typer.main.get_command(app)
    words = command[1:]
    path = ["fsml"]
    while hasattr(group, "commands") and words and words[0] in group.commands:
        path.append(words[0])
        group = group.commands[words.pop(0)]
    assert not hasattr(group, "commands"), f"{' '.join(command)}: no such command"
    group.make_context(" ".join(path), list(words))  # raises on an unknown option or a bad value


@pytest.mark.parametrize("command", [c for c in commands() if c[0] == "mlflow"], ids=lambda c: " ".join(c[:2]))
def test_every_mlflow_option_exists(command: list[str]) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlflow"), command[1], "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    for option in (c for c in command[2:] if c.startswith("--")):
        assert option in done.stdout
