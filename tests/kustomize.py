"""A small renderer of the Kustomize features deploy/k8s uses, so the tests can validate the
manifests where no ``kustomize``/``kubectl`` is installed (CI is Python only).

Supported: ``resources`` (files and directories), ``namespace``, ``labels`` (metadata only),
``images``, ``configMapGenerator`` and ``secretGenerator`` (literals, env files, ``behavior:
merge``; names without hash suffix, which deploy/k8s asks for), and ``patches`` given as
strategic-merge files (lists of objects merged by ``name``). Anything else is an error, so the
manifests cannot quietly outgrow it; a test checks the output against ``kubectl kustomize``
where kubectl is installed.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "configMapGenerator",
         "secretGenerator", "generatorOptions", "patches"}  # fmt: skip
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


def render(directory: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer does not support: {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else [o for o in yaml.safe_load_all(path.read_text()) if o]
    if (spec.get("configMapGenerator") or spec.get("secretGenerator")) and not spec.get("generatorOptions", {}).get(
        "disableNameSuffixHash"
    ):
        raise ValueError(f"{directory}: generated names with hash suffixes are not supported")
    for generator in spec.get("configMapGenerator", []):
        _generate(objects, "ConfigMap", generator, directory)
    for generator in spec.get("secretGenerator", []):
        _generate(objects, "Secret", generator, directory)
    for patch in spec.get("patches", []):
        for change in yaml.safe_load_all((directory / patch["path"]).read_text()):
            target = _find(objects, change["kind"], change["metadata"]["name"])
            _merge(target, change)
    for group in spec.get("labels", []):
        if group.get("includeSelectors") or group.get("includeTemplates"):
            raise ValueError("labels into selectors or templates are not supported")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(group["pairs"])
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for container in _containers(objects):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    return objects


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise ValueError(f"no {kind} {name} to patch or merge")


def _pairs(generator: dict[str, Any], directory: Path) -> dict[str, str]:
    lines = list(generator.get("literals", []))
    for env in generator.get("envs", []):
        lines += [x for x in (directory / env).read_text().splitlines() if x.strip() and not x.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _generate(objects: list[dict[str, Any]], kind: str, generator: dict[str, Any], directory: Path) -> None:
    data = _pairs(generator, directory)
    if kind == "Secret":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if generator.get("behavior") == "merge":
        _find(objects, kind, generator["name"]).setdefault("data", {}).update(data)
        return
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]}, "data": data}
    if kind == "Secret":
        obj["type"] = "Opaque"
    objects.append(obj)


def _merge(target: Any, change: Any) -> Any:
    """Strategic merge as Kubernetes does it for these objects: maps recursively, lists of named
    items by name, other lists replaced."""
    for key, value in change.items():
        old = target.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _merge(old, value)
        elif (
            isinstance(value, list)
            and isinstance(old, list)
            and value
            and all(isinstance(v, dict) and "name" in v for v in value)
        ):
            by_name = {item.get("name"): item for item in old}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    old.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)
    return target


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            specs.append(spec["jobTemplate"]["spec"]["template"]["spec"])
        elif "template" in spec:
            specs.append(spec["template"]["spec"])
    return specs


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for spec in pod_specs(objects) for c in spec.get("containers", []) + spec.get("initContainers", [])]
