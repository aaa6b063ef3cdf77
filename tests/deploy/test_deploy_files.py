"""deploy/ refers only to things that exist: commands, settings, ports, metrics, images."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.metrics import MetricWrapperBase

from connectors import registry
from streams.app.cli import main
from streams.app.worker import STAGES
from streams.core import metrics
from streams.core.catalog import default_catalog
from streams.core.settings import Settings

DEPLOY = Path(__file__).parents[2] / "deploy"
METRICS_PORT = 9400
COLLECTOR_PORT = 8088


def _yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


COMPOSE = _yaml_docs(DEPLOY / "compose.yaml")[0]
K8S = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in _yaml_docs(path)]
RULES = _yaml_docs(DEPLOY / "prometheus" / "rules.yml")[0]
PROMETHEUS = _yaml_docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "journeybus.json").read_text())
VERSION = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["version"]


def _declared_metrics() -> dict[str, set[str]]:
    """Every series name the code can export, with the metric's label names."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name, labels = value._name, set(value._labelnames)
            suffixes = {
                "counter": ["_total"],
                "gauge": [""],
                "histogram": ["_bucket", "_sum", "_count"],
            }
            for suffix in suffixes[value._type]:
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _expressions() -> list[str]:
    exprs = [rule["expr"] for group in RULES["groups"] for rule in group["rules"]]
    exprs += [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]
    return exprs


def _k8s_containers() -> list[dict]:
    out = []
    for doc in K8S:
        spec = doc.get("spec", {})
        template = spec.get("template", spec.get("jobTemplate", {})).get("spec", {})
        out += template.get("containers", [])
    return out


def _journeybus_commands() -> list[list[str]]:
    commands = [c["args"] for c in _k8s_containers() if c["image"].startswith("journeybus:")]
    for service in COMPOSE["services"].values():
        if not str(service.get("image", "")).startswith("journeybus:"):
            continue
        command = service.get("command")
        if service.get("entrypoint") == ["/bin/sh", "-c"]:
            for part in command[0].split("&&"):
                words = shlex.split(part)
                assert words[0] == "journeybus", part
                commands.append(words[1:])
        elif command:
            commands.append(command)
    return commands


def test_every_metric_in_rules_and_dashboard_is_declared_with_those_labels():
    declared = _declared_metrics()
    exprs = _expressions()
    assert len(exprs) > 15
    for expr in exprs:
        names = set(re.findall(r"\bjourneybus_[a-z_]+", expr))
        if not names:
            assert expr.startswith("up{job="), expr  # Prometheus's own scrape health
            continue
        unknown = names - set(declared)
        assert not unknown, f"{unknown} in {expr}"
        labels = set().union(*(declared[n] for n in names))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            used = {label.strip() for label in group.split(",")}
            assert used <= labels, f"{used - labels} are not labels of {names}: {expr}"
        for label in re.findall(r"\{(\w+)=", expr):
            assert label in labels, f"{label} in {expr}"


def test_every_journeybus_command_exists():
    commands = _journeybus_commands()
    assert len(commands) >= 10
    for args in commands:
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, f"journeybus {' '.join(args)}: {result.output}"


def _env_names() -> set[str]:
    """Settings a journeybus container reads: its env and the ConfigMaps and Secrets
    it takes its environment from (not, e.g., KEDA's own credentials)."""
    names = set()
    containers = [c for c in _k8s_containers() if c["image"].startswith("journeybus:")]
    sources = {
        ref.get("configMapRef", ref.get("secretRef", {})).get("name")
        for container in containers
        for ref in container.get("envFrom", [])
    }
    for doc in K8S:
        if doc["kind"] in ("ConfigMap", "Secret") and doc["metadata"]["name"] in sources:
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for container in containers:
        names |= {e["name"] for e in container.get("env", [])}
    for service in COMPOSE["services"].values():
        if str(service.get("image", "")).startswith("journeybus:"):
            names |= set(service.get("environment", {}))
    return names


def test_every_setting_in_the_manifests_is_read_by_the_code():
    names = _env_names()
    assert "KAFKA_BOOTSTRAP_SERVERS" in names
    for name in names - {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"}:
        prefix, *rest = name.split("__")
        if prefix == "JOURNEYBUS":
            if len(rest) == 1:
                assert rest[0].lower() in Settings.model_fields, name
            else:
                section = Settings.model_fields[rest[0].lower()].annotation
                assert rest[1].lower() in section.model_fields, name
        else:
            assert prefix == "CONNECTORS", name
            connector = registry.get(rest[0].lower().replace("_", "-"))
            assert rest[1].lower() in connector.settings_class.model_fields, name


def test_ports_agree():
    collector = COMPOSE["services"]["collector"]
    assert collector["command"][-1] == str(COLLECTOR_PORT)
    assert collector["ports"] == [f"{COLLECTOR_PORT}:{COLLECTOR_PORT}"]
    for container in _k8s_containers():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if "--port" in container["args"]:
            assert ports["http"] == int(container["args"][container["args"].index("--port") + 1])
        if container["args"][0] in ("collect", "worker", "sink", "connector"):
            assert ports["metrics"] == METRICS_PORT, container["name"]
    for doc in K8S:
        annotations = (
            doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        )
        if "prometheus.io/port" in annotations:
            assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    scrape = PROMETHEUS["scrape_configs"][0]["dns_sd_configs"][0]
    assert scrape["port"] == METRICS_PORT
    scraped = set(scrape["names"])
    ours = {
        name
        for name, service in COMPOSE["services"].items()
        # the dashboard serves pages (and /health), no metrics
        if str(service.get("image", "")).startswith("journeybus:")
        and name not in ("init", "dashboard")
    }
    assert scraped == ours, "Prometheus scrapes every journeybus service of the compose file"


def test_images_are_pinned_and_ours_is_built_here():
    assert (DEPLOY / "Dockerfile").exists()
    images = [c["image"] for c in _k8s_containers()]
    images += [s["image"] for s in COMPOSE["services"].values() if "image" in s]
    for image in images:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", image
        if name == "journeybus":
            assert tag in (VERSION, "local"), image
    builds = [s["build"] for s in COMPOSE["services"].values() if "build" in s]
    assert builds and all(
        (DEPLOY.parent / b["context"].replace("..", ".") / b["dockerfile"]).exists() for b in builds
    )


def test_grafana_and_prometheus_files_are_wired_to_their_mounts():
    mounts = {
        v.split(":")[1]: v.split(":")[0]
        for s in (COMPOSE["services"]["grafana"], COMPOSE["services"]["prometheus"])
        for v in s["volumes"]
    }
    provider = _yaml_docs(DEPLOY / "grafana/provisioning/dashboards/journeybus.yml")[0]
    assert provider["providers"][0]["options"]["path"] in mounts
    datasource = _yaml_docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0]
    uid = datasource["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in DASHBOARD["panels"]} == {uid}
    rule_file = PROMETHEUS["rule_files"][0]
    assert (
        rule_file.startswith("/etc/prometheus/")
        and (DEPLOY / "prometheus" / Path(rule_file).name).exists()
    )
    assert "/etc/prometheus" in mounts


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job", "ScaledObject", "Service"])
def test_the_kubernetes_manifests_have_each_kind_of_object(kind):
    assert any(doc["kind"] == kind for doc in K8S)
    assert all(
        doc["metadata"].get("namespace") == "journeybus"
        for doc in K8S
        if doc["kind"] != "Namespace"
    )


def _stage_of(args: list[str]) -> str | None:
    return args[2] if args[:2] == ["worker", "--stage"] and len(args) > 2 else None


def test_every_stage_of_the_worker_registry_is_deployed_and_scraped():
    """A stage that is not run produces nothing downstream: compose and Kubernetes run
    every stage ``journeybus worker`` knows (and the sink), and Prometheus scrapes them."""
    wanted = set(STAGES)
    compose = {
        _stage_of(service.get("command", [])): name
        for name, service in COMPOSE["services"].items()
        if str(service.get("image", "")).startswith("journeybus:")
    }
    k8s = {_stage_of(c["args"]) for c in _k8s_containers() if c["image"].startswith("journeybus:")}
    assert wanted <= set(compose), f"not in compose: {wanted - set(compose)}"
    assert wanted <= k8s, f"not in Kubernetes: {wanted - k8s}"
    scraped = set(PROMETHEUS["scrape_configs"][0]["dns_sd_configs"][0]["names"])
    services = {compose[stage] for stage in wanted}
    assert services <= scraped, f"not scraped: {services - scraped}"
    sinks = [c for c in _k8s_containers() if c["args"] == ["sink"]]
    assert sinks and any(s.get("command") == ["sink"] for s in COMPOSE["services"].values())


def test_every_stateful_stage_can_restore_its_state():
    """emptyDir state is a cache only where a changelog holds the state: every stateful
    stage of the registry has its changelogs in the catalogue."""
    catalog = default_catalog()
    for name, stage_class in STAGES.items():
        stage = stage_class(Settings())
        if stage.stateful:
            for topic in stage.inputs:
                assert catalog.changelog(name, topic).cleanup_policy == "compact"


def test_keda_reads_lag_with_credentials():
    auths = {d["metadata"]["name"] for d in K8S if d["kind"] == "TriggerAuthentication"}
    triggers = [
        trigger
        for doc in K8S
        if doc["kind"] == "ScaledObject"
        for trigger in doc["spec"]["triggers"]
    ]
    assert triggers
    for trigger in triggers:
        assert trigger.get("authenticationRef", {}).get("name") in auths, trigger
    for doc in K8S:
        if doc["kind"] == "TriggerAuthentication":
            secrets = {d["metadata"]["name"]: d for d in K8S if d["kind"] == "Secret"}
            for ref in doc["spec"]["secretTargetRef"]:
                assert ref["key"] in secrets[ref["name"]]["stringData"], ref
