"""Checks of deploy/ that need no cluster and no Docker engine.

Each ``*_problems`` function returns a list of readable problems (empty when all is
well), so that the tests can show every problem at once and can feed the same
functions a broken copy of a manifest to prove they catch it.

Kubernetes schemas: the JSON schemas bundled in the ``kubernetes-validate`` wheel
(a test dependency; generated from the official OpenAPI documents of each Kubernetes
release, ``-strict`` variants that reject unknown fields), read offline.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_DIR = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"

K8S_VERSIONS = ("1.29.0", "1.37.0")
"""The oldest Kubernetes release the manifests promise to work on, and the newest
whose schemas ``kubernetes-validate`` bundles (docs/operations.md says the same)."""

DISTRIBUTED_OPTIONS = ("--role", "--log", "--backend")
"""``mussel serve`` options of distributed mode (SPEC §9) that the manifests use."""

Doc = dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    path: Path
    doc: Doc

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name"))

    def __str__(self) -> str:
        return f"{self.path.name}: {self.kind}/{self.name}"


def load_manifests(directory: Path = K8S_DIR) -> list[Manifest]:
    """Every Kubernetes object in the directory's YAML files (not kustomization.yaml)."""
    out = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append(Manifest(path, doc))
    return out


def load_kustomization(directory: Path = K8S_DIR) -> Doc:
    doc: Doc = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return doc


# -- schema -------------------------------------------------------------------------


def schema_problems(doc: Doc, k8s_version: str) -> list[str]:
    """The object against the strict JSON schema of its kind in that Kubernetes release."""
    import kubernetes_validate  # type: ignore[import-untyped]
    from kubernetes_validate.utils import SchemaNotFoundError  # type: ignore[import-untyped]

    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top)"
        return [f"k8s {k8s_version}: {where}: {exc.message}"]
    except SchemaNotFoundError as exc:
        return [f"k8s {k8s_version}: {exc.message}"]
    except (KeyError, TypeError) as exc:
        return [f"k8s {k8s_version}: not a Kubernetes object ({exc!r})"]
    return []


# -- pods ---------------------------------------------------------------------------


def workloads(manifests: Iterable[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m.kind in ("Deployment", "StatefulSet", "DaemonSet"))


def pod_spec(m: Manifest) -> Doc:
    spec: Doc = m.doc["spec"]["template"]["spec"]
    return spec


def pod_labels(m: Manifest) -> dict[str, str]:
    labels: dict[str, str] = m.doc["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(m: Manifest) -> list[Doc]:
    spec = pod_spec(m)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def probes(m: Manifest) -> Iterator[tuple[Doc, str, Doc]]:
    """(container, probe kind, probe) of every probe of the workload's containers."""
    for c in containers(m):
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c:
                yield c, kind, c[kind]


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) picks these labels."""
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def reference_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Names that must refer to objects, keys, volumes and ports defined in the manifests,
    and selectors that must select the pods they are meant for."""
    problems: list[str] = []
    by_kind: dict[tuple[str, str], Doc] = {(m.kind, m.name): m.doc for m in manifests}

    def keys_of(kind: str, name: str) -> set[str] | None:
        doc = by_kind.get((kind, name))
        if doc is None:
            return None
        return set(doc.get("data", {})) | set(doc.get("stringData", {}))

    def need(m: Manifest, kind: str, name: str, key: str | None, where: str) -> None:
        keys = keys_of(kind, name)
        if keys is None:
            problems.append(f"{m}: {where} refers to {kind} {name!r}, not defined")
        elif key is not None and key not in keys:
            problems.append(f"{m}: {where} refers to key {key!r} of {kind} {name!r}: no such key")

    namespaces = {m.name for m in manifests if m.kind == "Namespace"}
    for m in manifests:
        ns = m.doc.get("metadata", {}).get("namespace")
        if m.kind != "Namespace" and ns not in namespaces:
            problems.append(f"{m}: namespace {ns!r} is not one the manifests define")

    for m in workloads(manifests):
        spec = pod_spec(m)
        labels = pod_labels(m)
        selector = m.doc["spec"].get("selector", {})
        if not _selects(selector, labels):
            problems.append(f"{m}: spec.selector does not select its own pod template's labels")
        for i, tsc in enumerate(spec.get("topologySpreadConstraints", [])):
            if not _selects(tsc.get("labelSelector", {}), labels):
                problems.append(f"{m}: topologySpreadConstraints[{i}] selects other pods")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounted: set[str] = set()
        for v in volumes.values():
            if "configMap" in v:
                for item in v["configMap"].get("items", [{"key": None}]):
                    need(m, "ConfigMap", v["configMap"]["name"], item["key"], f"volume {v['name']}")
            if "secret" in v:
                for item in v["secret"].get("items", [{"key": None}]):
                    need(m, "Secret", v["secret"]["secretName"], item["key"], f"volume {v['name']}")
        for c in containers(m):
            where = f"container {c['name']}"
            for mount in c.get("volumeMounts", []):
                mounted.add(mount["name"])
                if mount["name"] not in volumes:
                    problems.append(f"{m}: {where} mounts volume {mount['name']!r}: not defined")
            for env in c.get("env", []):
                src = env.get("valueFrom", {})
                if "secretKeyRef" in src:
                    ref = src["secretKeyRef"]
                    need(m, "Secret", ref["name"], ref["key"], f"{where} env {env['name']}")
                if "configMapKeyRef" in src:
                    ref = src["configMapKeyRef"]
                    need(m, "ConfigMap", ref["name"], ref["key"], f"{where} env {env['name']}")
            for env_from in c.get("envFrom", []):
                if "configMapRef" in env_from:
                    need(m, "ConfigMap", env_from["configMapRef"]["name"], None, f"{where} envFrom")
                if "secretRef" in env_from:
                    need(m, "Secret", env_from["secretRef"]["name"], None, f"{where} envFrom")
        for c, kind, probe in probes(m):
            port = probe.get("httpGet", {}).get("port")
            port_names = {p.get("name") for p in c.get("ports", [])}
            port_numbers = {p["containerPort"] for p in c.get("ports", [])}
            if port is not None and port not in port_names | port_numbers:
                problems.append(f"{m}: {kind} of {c['name']} uses port {port!r}: not declared")
        for name in set(volumes) - mounted:
            problems.append(f"{m}: volume {name!r} is mounted by no container")

    pods = [(m, pod_labels(m)) for m in workloads(manifests)]
    for m in manifests:
        if m.kind == "Service":
            selector = m.doc["spec"].get("selector", {})
            chosen = [w for w, labels in pods if _selects({"matchLabels": selector}, labels)]
            if not chosen:
                problems.append(f"{m}: its selector {selector} selects no workload's pods")
            for port in m.doc["spec"].get("ports", []):
                target = port.get("targetPort", port.get("port"))
                for w in chosen:
                    declared = {
                        p.get(key)
                        for c in containers(w)
                        for p in c.get("ports", [])
                        for key in ("name", "containerPort")
                    }
                    if target not in declared:
                        problems.append(f"{m}: targetPort {target!r} is no port of {w}")
        if m.kind == "PodDisruptionBudget":
            selector = m.doc["spec"].get("selector", {})
            if not any(_selects(selector, labels) for _, labels in pods):
                problems.append(f"{m}: its selector selects no workload's pods")
    return problems


def kustomization_problems(kustomization: Doc, directory: Path = K8S_DIR) -> list[str]:
    """Every YAML file of the directory is a resource of the kustomization and back."""
    problems: list[str] = []
    listed = list(kustomization.get("resources", []))
    files = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    for name in listed:
        if not (directory / name).is_file():
            problems.append(f"kustomization.yaml lists {name}: no such file")
    for name in files:
        if name not in listed:
            problems.append(f"kustomization.yaml does not list {name}")
    ns = kustomization.get("namespace")
    for m in load_manifests(directory):
        have = m.doc.get("metadata", {}).get("namespace")
        if m.kind != "Namespace" and have != ns:
            problems.append(f"{m}: namespace {have!r}, the kustomization's is {ns!r}")
    images = {
        c["image"].split(":")[0]
        for m in workloads(load_manifests(directory))
        for c in containers(m)
    }
    for entry in kustomization.get("images", []):
        if entry["name"] not in images:
            problems.append(f"kustomization.yaml sets image {entry['name']!r}, which no pod uses")
    return problems


# -- the Dockerfile -----------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (None for the shell form)."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        assert isinstance(parsed, list)
        return [str(x) for x in parsed]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, value = line.partition(" ")
        out.append(Instruction(keyword.upper(), value.strip()))
    return out


def final_stage(instructions: Sequence[Instruction]) -> list[Instruction]:
    """The instructions of the last build stage (what the image is)."""
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return list(instructions[starts[-1] :])


def healthcheck_command(instructions: Sequence[Instruction]) -> list[str]:
    """The HEALTHCHECK's command, as the argv Docker runs (exec form only)."""
    (hc,) = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    _, _, cmd = hc.value.partition("CMD ")
    parsed = Instruction("CMD", cmd).exec_form()
    return parsed if parsed is not None else ["/bin/sh", "-c", cmd]


def split_args(value: str) -> list[str]:
    return shlex.split(value)


_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_k8s_env(arg: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` in container args, as the kubelet expands them."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), arg)
