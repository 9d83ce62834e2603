"""The operations side, checked offline: Dockerfile, docker-compose, Prometheus rules and
their promtool unit tests, the Grafana dashboard and the Kubernetes manifests.

promtool is the real one (Debian package `prometheus`; `deploy/tools.sh` installs it).
Kubernetes manifests are validated against the Kubernetes JSON schemas by
`kubernetes-validate` (strict: unknown fields fail); the ServiceMonitor CRD has no schema
there and is checked structurally. Building and running the image is `make image-test`
(deploy/image.sh), not part of this file.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_utils import keccak
from prometheus_client.metrics import MetricWrapperBase

from indexer import metrics
from indexer.config import Settings, load_settings
from indexer.migrate import MIGRATIONS_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "audifi-indexer.json"

JOB = "audifi-indexer"  # Prometheus job: compose scrape config and the k8s Service name
METRICS_PORT = 9108
K8S_MIN_VERSION = "1.29"
K8S_TEMPLATES = {"secret.example.yaml", "backfill-job.yaml"}  # not applied by kustomize
CRD_KINDS = {"ServiceMonitor", "PodMonitor"}
# The CREATE address of anvil's first dev account (test mnemonic) at nonce 0.
ANVIL_ACCOUNT_0 = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"

# --- helpers ------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def setting_env_names() -> set[str]:
    """Every AUDIFI_* variable the indexer reads."""
    return {f"AUDIFI_{name.upper()}" for name in Settings.model_fields} | {MIGRATIONS_DIR_ENV}


def exported_series() -> dict[str, set[str] | None]:
    """Series name -> label names (None: any) for everything indexer.metrics declares,
    with the chain's label every one of them carries when exported."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    series: dict[str, set[str] | None] = {"up": set()}
    for collector in vars(metrics).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        (family,) = collector.describe()
        labels = {*collector._labelnames, metrics.CHAIN_LABEL}
        for suffix in suffixes[family.type]:
            if family.type == "info":
                series[family.name + suffix] = None
            else:
                series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


_SELECTOR = re.compile(r"\b(audifi_indexer_[a-z0-9_]+|up)\{([^}]*)\}")
_METRIC = re.compile(r"\baudifi_indexer_[a-z0-9_]+\b")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_BY_LABELS = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def metric_problems(expr: str, series: dict[str, set[str] | None]) -> list[str]:
    """Unknown metric names and label names in one PromQL expression."""
    problems = [f"unknown metric {name}" for name in _METRIC.findall(expr) if name not in series]
    known: set[str] = {"job", "instance"}
    for name, matchers in _SELECTOR.findall(expr):
        allowed = series.get(name, set())
        if allowed is None:
            continue
        known |= allowed
        for label in _MATCHER_LABEL.findall(matchers):
            if label not in allowed | {"job", "instance"}:
                problems.append(f"{name} has no label {label!r}")
    for group in _BY_LABELS.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in known:
                problems.append(f"by ({label}): no metric in the expression has it")
    return problems


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROM / "alerts.yml")["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


# --- promtool -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """The real promtool; installed by deploy/tools.sh where root and apt-get allow."""
    found = shutil.which("promtool")
    if found is None:
        subprocess.run(["bash", str(DEPLOY / "tools.sh")], check=False, timeout=900)
        found = shutil.which("promtool")
    if found is None:
        reason = (
            "promtool is missing and deploy/tools.sh could not install it (needs root and "
            "apt-get): install the Debian/Ubuntu package 'prometheus' or a Prometheus release"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run_promtool(promtool: str, *args: str, cwd: Path = PROM) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_check_config(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in output


def test_promtool_check_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", "alerts.yml")
    assert f"{len(alert_rules())} rules found" in output


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", "alerts_test.yml")
    assert "SUCCESS" in output


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for group in load_yaml(PROM / "alerts_test.yml")["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown not firing"
    assert (fires | silent) - names == set(), "tests for alerts that do not exist"


def test_alerts_tell_the_on_call_what_to_do() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    required = {
        "AudifiIndexerDown",
        "AudifiIndexerAbsent",
        "AudifiIndexerLagHigh",
        "AudifiIndexerNoProgress",
        "AudifiIndexerRpcErrorRatioHigh",
        "AudifiIndexerReorgTooDeep",
    }
    assert required <= set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        notes = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert len(notes.get(key, "").strip()) > 20, f"{rule['alert']}: {key}"
        assert "`" in notes["runbook"] or "see " in notes["runbook"].lower(), rule["alert"]
    deep = next(rule for rule in rules if rule["alert"] == "AudifiIndexerReorgTooDeep")
    assert "audifi-indexer rewind --to-block" in deep["annotations"]["runbook"]


def test_alert_rules_select_the_scrape_job() -> None:
    for rule in alert_rules():
        if "audifi_indexer_" in rule["expr"] or "up{" in rule["expr"]:
            assert f'job="{JOB}"' in rule["expr"], rule["alert"]


def test_rules_and_dashboard_use_only_exported_metrics_and_labels() -> None:
    series = exported_series()
    assert "audifi_indexer_lag_blocks" in series
    assert "audifi_indexer_rpc_latency_seconds_bucket" in series
    exprs = [(rule["alert"], rule["expr"]) for rule in alert_rules()] + dashboard_exprs()
    problems = [f"{where}: {p}" for where, expr in exprs for p in metric_problems(expr, series)]
    assert problems == []


def test_metric_check_catches_typos() -> None:
    series = exported_series()
    assert metric_problems("audifi_indexer_lag_block > 1", series)
    assert metric_problems('audifi_indexer_rpc_requests_total{outcome="ok", kind="x"}', series)
    assert metric_problems("sum by (kind) (audifi_indexer_lag_blocks)", series)
    assert not metric_problems(
        'sum by (side) (rate(audifi_indexer_time_spent_seconds_total{job="x"}[5m]))', series
    )


def test_prometheus_scrapes_the_compose_indexer() -> None:
    config = load_yaml(PROM / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"indexer:{METRICS_PORT}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "indexer" in load_yaml(COMPOSE)["services"]


# --- Grafana ------------------------------------------------------------------------


def test_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    text = " ".join(expr for _, expr in dashboard_exprs())
    for needle in (
        "audifi_indexer_lag_blocks",
        "audifi_indexer_lag_seconds",
        "sum by (kind) (rate(audifi_indexer_events_indexed_total",
        'outcome!="ok"',
        "histogram_quantile(0.95, sum by (le) (rate(audifi_indexer_rpc_latency_seconds_bucket",
        "audifi_indexer_reorgs_total",
        "audifi_indexer_reorg_depth_blocks_bucket",
        "sum by (side) (rate(audifi_indexer_time_spent_seconds_total",
        "audifi_indexer_batch_duration_seconds_bucket",
    ):
        assert needle in text, needle
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel[
                "title"
            ]


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Every panel query, with Grafana's variables filled in, parses as a recording rule."""
    rules = []
    for n, (_, expr) in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "5m").replace("$job", ".*")
        rules.append(
            {"record": f"dashboard:query_{n}", "expr": concrete.replace("$instance", ".*")}
        )
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", str(path))


def test_grafana_provisioning_matches_compose_mounts() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "audifi.yml")["providers"]
    volumes = load_yaml(COMPOSE)["services"]["grafana"]["volumes"]
    assert (
        f"./grafana/{DASHBOARD.name}:{provider['options']['path']}/{DASHBOARD.name}:ro" in volumes
    )
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes


# --- Kubernetes ---------------------------------------------------------------------


def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: load_yaml_all(p)
        for p in sorted(K8S.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


def k8s_one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for docs in k8s_docs().values()
        for doc in docs
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("filename", sorted(k8s_docs()))
def test_manifest_validates_against_kubernetes_schemas(filename: str) -> None:
    import kubernetes_validate as kv  # dev extra; a missing install fails here, loudly

    versions = (K8S_MIN_VERSION, kv.latest_version())
    for doc in k8s_docs()[filename]:
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.SchemaNotFoundError:
                assert doc["kind"] in CRD_KINDS, f"no schema for {doc['kind']}"
            except kv.ValidationError as e:
                where = ".".join(str(part) for part in e.path)
                pytest.fail(f"{filename} {doc['kind']} (k8s {version}) at {where}: {e.message}")


def test_kustomization_applies_everything_but_the_templates() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    resources = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in resources)
    assert resources | K8S_TEMPLATES == set(k8s_docs()), (
        "a manifest is neither applied nor a template"
    )
    assert not resources & K8S_TEMPLATES
    namespace = kustomization["namespace"]
    for docs in k8s_docs().values():
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    images = {image["name"] for image in kustomization["images"]}
    for spec in pod_specs().values():
        for container in spec["containers"]:
            assert container["image"].split(":")[0] in images


def pod_specs() -> dict[str, dict[str, Any]]:
    """Pod specs of the Deployment and both Jobs, by workload name."""
    specs = {}
    for docs in k8s_docs().values():
        for doc in docs:
            if doc["kind"] in {"Deployment", "Job"}:
                specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    assert len(specs) == 3
    return specs


def test_follower_deployment_runs_a_standby_rolls_without_downtime_and_probes_health() -> None:
    deployment = k8s_one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2, "a leader and a hot standby"
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (budget,) = k8s_docs()["pdb.yaml"]
    assert budget["kind"] == "PodDisruptionBudget" and budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == spec["selector"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == ["run"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert resources["limits"]["memory"] == "512Mi"


def test_pods_are_locked_down() -> None:
    uid = int(dockerfile_final_stage()["USER"][-1].split(":")[0])
    for name, spec in pod_specs().items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in container["resources"]["limits"], name
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def test_database_url_comes_from_the_secrets_only_and_only_migrate_owns_the_schema() -> None:
    indexer = k8s_one("Secret", "audifi-indexer-db")
    owner = k8s_one("Secret", "audifi-indexer-db-owner")
    configmap = k8s_one("ConfigMap")
    assert not any("DATABASE" in name or "PASSWORD" in name for name in configmap["data"])
    for name, spec in pod_specs().items():
        (container,) = spec["containers"]
        env = {item["name"]: item for item in container["env"]}
        ref = env["AUDIFI_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        # Migrations need the owner (DDL); everything else runs as the indexer role.
        secret = owner if container["args"][:1] == ["migrate"] else indexer
        assert ref == {"name": secret["metadata"]["name"], "key": "database-url"}, name
        assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    for secret in (indexer, owner):
        (key,) = secret["stringData"]
        assert "PASSWORD" in secret["stringData"][key], "the template must hold a placeholder only"
    assert indexer["stringData"]["database-url"] != owner["stringData"]["database-url"]


def test_configmap_is_a_valid_indexer_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    data = k8s_one("ConfigMap")["data"]
    assert set(data) <= setting_env_names(), "keys the indexer does not read"
    for name in os.environ:
        if name.startswith("AUDIFI_"):
            monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    secret = k8s_one("Secret", "audifi-indexer-db")
    monkeypatch.setenv("AUDIFI_DATABASE_URL", secret["stringData"]["database-url"])
    settings = load_settings()
    assert settings.metrics_host == "0.0.0.0"
    assert settings.metrics_port == METRICS_PORT
    assert settings.log_format == "json"


def test_service_and_servicemonitor_reach_the_follower() -> None:
    service = k8s_one("Service")
    assert service["metadata"]["name"] == JOB, "the Service name is the job label alerts select"
    pod_labels = k8s_one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", METRICS_PORT, "metrics")
    assert service["spec"]["publishNotReadyAddresses"] is True, "a lagging follower must be scraped"
    monitor = k8s_one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}


def test_jobs_migrate_and_backfill() -> None:
    migrate = k8s_one("Job", "audifi-indexer-migrate")
    (container,) = migrate["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate", "up"]
    assert migrate["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    backfills = [doc for doc in k8s_docs()["backfill-job.yaml"] if doc["kind"] == "Job"]
    (backfill,) = backfills
    (container,) = backfill["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "backfill" and "--from-block" in args and "--to-block" in args
    start, end = int(args[args.index("--from-block") + 1]), int(args[args.index("--to-block") + 1])
    assert start <= end
    # An Indexed Job of N pods, each shard JOB_COMPLETION_INDEX of N, each retried alone.
    spec = backfill["spec"]
    shards = int(args[args.index("--shards") + 1])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards
    assert "backoffLimitPerIndex" in spec and "backoffLimit" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # Its progress gauges are scraped while it runs: a PodMonitor on its pod's metrics port.
    (monitor,) = [doc for doc in k8s_docs()["backfill-job.yaml"] if doc["kind"] == "PodMonitor"]
    pod_labels = backfill["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert endpoint["port"] == "metrics" and ports["metrics"] == METRICS_PORT


CHAINS = DEPLOY / "kubernetes-chains"


def chain_overlays() -> list[Path]:
    return sorted(path.parent for path in CHAINS.glob("*/kustomization.yaml"))


def overlay_configmap(overlay: Path) -> dict[str, str]:
    """The base ConfigMap's data with the overlay's JSON-patch values applied."""
    data = dict(k8s_one("ConfigMap")["data"])
    for patch in load_yaml(overlay / "kustomization.yaml")["patches"]:
        if patch.get("target", {}).get("kind") == "ConfigMap":
            for op in yaml.safe_load(patch["patch"]):
                assert op["op"] in {"add", "replace"} and op["path"].startswith("/data/")
                data[op["path"].removeprefix("/data/")] = op["value"]
    return data


@pytest.mark.parametrize("overlay", chain_overlays(), ids=lambda p: p.name)
def test_a_further_chain_is_an_overlay_with_a_follower_of_its_own(
    overlay: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kustomization = load_yaml(overlay / "kustomization.yaml")
    assert kustomization["resources"] == ["../../kubernetes"]
    assert kustomization["nameSuffix"] == f"-{overlay.name}"
    (labels,) = kustomization["labels"]
    assert labels["includeSelectors"] is True
    assert labels["pairs"] == {"app.kubernetes.io/instance": f"audifi-indexer-{overlay.name}"}
    data = overlay_configmap(overlay)
    assert data["AUDIFI_CHAIN_ID"] != k8s_one("ConfigMap")["data"]["AUDIFI_CHAIN_ID"]
    for name in [n for n in os.environ if n.startswith("AUDIFI_")]:
        monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUDIFI_DATABASE_URL", "postgresql://x:y@db/audifi")
    assert load_settings().chain_id == int(data["AUDIFI_CHAIN_ID"])


def kustomize(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed")
@pytest.mark.parametrize("overlay", chain_overlays(), ids=lambda p: p.name)
def test_the_overlay_builds_a_second_follower_beside_the_base(overlay: Path) -> None:
    base = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(K8S)}
    added = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(overlay)}
    suffix = f"-{overlay.name}"
    assert {kind for kind, _ in added} == {"ConfigMap", "Deployment", "PodDisruptionBudget"}
    assert all(name.endswith(suffix) for _, name in added), "shared objects are the base's"
    assert not added.keys() & base.keys()
    (deployment,) = [d for (kind, _), d in added.items() if kind == "Deployment"]
    (budget,) = [d for (kind, _), d in added.items() if kind == "PodDisruptionBudget"]
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pods.items()
    # The base's budget does not count the new chain's pods; its Service scrapes them.
    base_budget = base[("PodDisruptionBudget", JOB)]["spec"]["selector"]["matchLabels"]
    assert not base_budget.items() <= pods.items()
    assert base[("Service", JOB)]["spec"]["selector"].items() <= pods.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": f"audifi-indexer-config{suffix}"}}]


# --- docker-compose -----------------------------------------------------------------

COMPOSE_TOP_KEYS = {"name", "services", "volumes", "networks", "secrets", "configs", "include"}
COMPOSE_SERVICE_KEYS = set(  # the Compose Specification's service attributes
    """annotations attach build blkio_config cap_add cap_drop cgroup cgroup_parent command configs
    container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
    cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices
    dns dns_opt dns_search domainname entrypoint env_file environment expose extends
    external_links extra_hosts group_add healthcheck hostname image init ipc isolation labels
    links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
    network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports privileged
    profiles pull_policy read_only restart runtime scale secrets security_opt shm_size stdin_open
    stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits user userns_mode uts
    volumes volumes_from working_dir""".split()  # noqa: SIM905
)
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def env_file(name: str) -> dict[str, str]:
    lines = (DEPLOY / name).read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_compose_uses_only_known_keys() -> None:
    doc = compose()
    assert {key for key in doc if not key.startswith("x-")} <= COMPOSE_TOP_KEYS
    for name, service in doc["services"].items():
        assert set(service) <= COMPOSE_SERVICE_KEYS, (
            f"{name}: {set(service) - COMPOSE_SERVICE_KEYS}"
        )
        assert set(service.get("healthcheck", {})) <= HEALTHCHECK_KEYS, name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in doc["services"], f"{name} depends on unknown {dependency}"
            assert how["condition"] in DEPENDS_CONDITIONS, name


def test_compose_runs_migrate_then_the_follower() -> None:
    services = compose()["services"]
    assert {"postgres", "anvil", "migrate", "indexer", "prometheus", "grafana"} <= set(services)
    assert services["migrate"]["command"] == ["migrate", "up"]
    assert services["migrate"]["restart"] == "no"
    indexer = services["indexer"]
    assert indexer["command"] == ["run"]
    assert indexer["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert indexer["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "anvil", "indexer"):
        assert services[name]["healthcheck"]["test"], name
    probe = " ".join(indexer["healthcheck"]["test"])
    assert f"127.0.0.1:{METRICS_PORT}/healthz" in probe
    assert f"127.0.0.1:{METRICS_PORT}:{METRICS_PORT}" in indexer["ports"]
    assert "--host=0.0.0.0" in services["anvil"]["command"]
    assert services["grafana"]["profiles"] == ["grafana"], "Grafana is optional"
    assert "./prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert (DEPLOY / services["indexer"]["build"]["context"] / "Dockerfile").is_file()


def test_compose_indexer_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    for name in ("migrate", "indexer"):
        env = services[name]["environment"]
        assert set(env) <= setting_env_names(), f"{name}: keys the indexer does not read"
        assert env["AUDIFI_METRICS_HOST"] == "0.0.0.0"
        assert env["AUDIFI_RPC_URL"] == "http://anvil:8545"
        assert "AUDIFI_DATABASE_URL" not in env, "the database URL comes from the env_file"
    for name in os.environ:
        if name.startswith("AUDIFI_"):
            monkeypatch.delenv(name)
    secrets = {}
    for path in services["indexer"]["env_file"]:
        secrets |= env_file(path)
    for key, value in {**services["indexer"]["environment"], **secrets}.items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings()
    assert settings.metrics_port == METRICS_PORT


def test_compose_secrets_live_in_env_files_that_agree() -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"(PASSWORD|SECRET)[A-Z_]*\s*[:=]\s*\S", text), "inline secret in compose"
    services = compose()["services"]
    postgres = {}
    for path in services["postgres"]["env_file"]:
        postgres |= env_file(path)
    indexer = {}
    for path in services["indexer"]["env_file"]:
        indexer |= env_file(path)
    expected = (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert indexer["AUDIFI_DATABASE_URL"] == expected


def test_compose_factory_address_is_the_workload_deployment() -> None:
    """devchain_workload.py deploys the factory as anvil's first transaction."""
    sender = bytes.fromhex(ANVIL_ACCOUNT_0)
    create_address = "0x" + keccak(b"\xd6\x94" + sender + b"\x80")[12:].hex()
    script = (DEPLOY / "devchain_workload.py").read_text()
    assert f'EXPECTED_FACTORY = "{create_address}"' in script
    services = compose()["services"]
    assert services["indexer"]["environment"]["AUDIFI_FACTORY_ADDRESS"].lower() == create_address
    compile(script, "devchain_workload.py", "exec")
    mount = "./devchain_workload.py:/opt/audifi/devchain_workload.py:ro"
    assert mount in services["workload"]["volumes"]


def test_compose_relative_paths_exist() -> None:
    for name, service in compose()["services"].items():
        for path in service.get("env_file", []):
            assert (DEPLOY / path).is_file(), f"{name}: {path}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


# --- Dockerfile and build context -----------------------------------------------------


def dockerfile() -> tuple[dict[str, list[str]], list[dict[str, list[str]]]]:
    """(instructions before the first FROM, one dict per stage): instruction -> argument lines."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    preamble: dict[str, list[str]] = {}
    stages: list[dict[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append({})
        target = stages[-1] if stages else preamble
        target.setdefault(instruction.upper(), []).append(" ".join(args.split()))
    return preamble, stages


def dockerfile_final_stage() -> dict[str, list[str]]:
    return dockerfile()[1][-1]


def dockerfile_env(stage: dict[str, list[str]]) -> dict[str, str]:
    pairs = [item.split("=", 1) for line in stage.get("ENV", []) for item in line.split()]
    return {key: value for key, value in pairs}


def test_dockerfile_is_multi_stage_on_a_slim_python_base() -> None:
    preamble, stages = dockerfile()
    assert any(re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim\S*", arg) for arg in preamble["ARG"])
    assert len(stages) >= 2
    assert [stage["FROM"][0].split()[0] for stage in stages] == ["${PYTHON_IMAGE}"] * len(stages)
    assert stages[0]["FROM"][0].endswith("AS builder")
    assert "--from=builder /opt/venv /opt/venv" in dockerfile_final_stage()["COPY"]


def test_dependencies_come_from_pyproject_via_a_wheel() -> None:
    builder = dockerfile()[1][0]
    assert "pyproject.toml README.md ./" in builder["COPY"]
    build = " ".join(builder["RUN"])
    assert "pip wheel" in build and "--no-deps" in build
    assert "requirements" not in build
    assert "pip uninstall" in build, "pip itself must not reach the final image"


def test_final_stage_has_no_build_tools_or_caches() -> None:
    final = dockerfile_final_stage()
    for command in final.get("RUN", []):
        for forbidden in ("install", "gcc", "build-essential", "pip", "curl", "wget"):
            assert forbidden not in command, f"final stage runs {command!r}"
    assert not any(line.startswith(". ") or line.startswith("./ ") for line in final["COPY"])


def test_image_runs_as_a_non_root_user() -> None:
    (user,) = dockerfile_final_stage()["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "numeric non-root uid (Kubernetes runAsNonRoot)"


def test_entrypoint_command_port_and_environment() -> None:
    final = dockerfile_final_stage()
    assert json.loads(final["ENTRYPOINT"][0]) == ["audifi-indexer"], "exec form"
    assert json.loads(final["CMD"][0]) == ["run"]
    assert final["EXPOSE"] == [str(METRICS_PORT)]
    env = dockerfile_env(final)
    assert env["AUDIFI_METRICS_HOST"] == "0.0.0.0"
    assert env["AUDIFI_METRICS_PORT"] == str(METRICS_PORT)
    assert f"sql {Path(env[MIGRATIONS_DIR_ENV]).parent}" in final["COPY"]
    assert Path(env[MIGRATIONS_DIR_ENV]).name == "migrations"
    assert env["PATH"].startswith("/opt/venv/bin:")


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, int]]]:
    """A stand-in /healthz on a free port; set state["status"] to choose the answer."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_healthcheck_passes_on_200_and_fails_on_503(
    health_server: tuple[int, dict[str, int]],
) -> None:
    (line,) = dockerfile_final_stage()["HEALTHCHECK"]
    options, _, command = line.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    program, flag, code = json.loads(command)
    assert (program, flag) == ("python3", "-c")
    port, state = health_server

    def probe() -> int:
        env = {**os.environ, "AUDIFI_METRICS_PORT": str(port)}
        run = [sys.executable, "-c", code]
        return subprocess.run(run, env=env, capture_output=True, timeout=20, check=False).returncode

    assert probe() == 0
    state["status"] = 503
    assert probe() == 1


_PATTERN_PARTS = re.compile(r"\*\*/|\*\*|\*|\?|[^*?]+")


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match plus `**`)."""
    out = []
    for part in _PATTERN_PARTS.findall(pattern.strip("/")):
        out.append(
            {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        )
    return re.compile("".join(out))


def excluded_from_context(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a matching directory covers its files."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.lstrip("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_context_small() -> None:
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/indexer/cli.data.json",
        "indexer/__pycache__/cli.cpython-311.pyc",
        "indexer/devchain/__pycache__/anvil.cpython-311.pyc",
        ".pgdata/PG_VERSION",
        "tests/test_deploy.py",
        "deploy/env/indexer.env",
    ):
        assert excluded_from_context(path), f"{path} would be sent to the build"
    for path in (
        "pyproject.toml",
        "README.md",
        "indexer/cli.py",
        "indexer/devchain/artifacts/MasterNFT.json",
        "sql/migrations/0001_identity.up.sql",
    ):
        assert not excluded_from_context(path), f"{path} is needed by the build"


def test_every_copy_source_is_in_the_build_context() -> None:
    for stage in dockerfile()[1]:
        for line in stage.get("COPY", []):
            if line.startswith("--from="):
                continue
            *sources, _ = line.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not excluded_from_context(source), f"{source} is excluded by .dockerignore"


# --- scripts and docs ---------------------------------------------------------------


@pytest.mark.parametrize("script", ["image.sh", "tools.sh"])
def test_deploy_scripts_are_executable_bash(script: str) -> None:
    path = DEPLOY / script
    assert os.access(path, os.X_OK), f"chmod +x deploy/{script}"
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_docs_and_configs_name_only_real_settings() -> None:
    known = setting_env_names()
    sources = [DEPLOY / "README.md", PROM / "alerts.yml", COMPOSE, *K8S.glob("*.yaml")]
    sources += [ROOT / "Dockerfile", *(DEPLOY / "env").glob("*.env")]
    unknown = {
        f"{path.name}: {name}"
        for path in sources
        for name in re.findall(r"\bAUDIFI_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
        if name not in known
    }
    assert unknown == set()


def test_readme_explains_every_alert() -> None:
    readme = (DEPLOY / "README.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if f"### {rule['alert']}" not in readme]
    assert missing == []
