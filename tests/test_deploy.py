"""The deployment starters (issue #26): deploy/kubernetes is valid against the Kubernetes schemas,
and both starters run two replicas with health checks on /healthz and a termination grace
period the drain fits in, with the secrets referenced, never inlined."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from lumabot.app import SHUTDOWN_GRACE
from lumabot.config import Settings

DEPLOY = Path(__file__).parent.parent / "deploy"
KUBERNETES_VERSION = "1.30"
SECRETS = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "LUMA_AGENTS_API_KEY",
           "LUMABOT_DATABASE_URL", "LUMABOT_USER_HASH_SALT"}


def drain_seconds() -> float:
    """What `lumabot run` gives creates and uploads in progress on SIGTERM, by default."""
    return max(SHUTDOWN_GRACE, Settings.model_fields["luma_request_timeout"].default + 1)


def _seconds(value: str) -> float:
    return float(value[:-1]) * (60 if value.endswith("m") else 1)


@pytest.mark.parametrize("path", sorted((DEPLOY / "kubernetes").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifests_are_valid(path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_two_replicas_that_drain_and_report_health():
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= drain_seconds() + 5
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["requests"]["cpu"]
    env = {e["name"]: e for e in container["env"]}
    for name in SECRETS & set(env):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == "lumabot", name
    pdb = yaml.safe_load((DEPLOY / "kubernetes" / "pdb.yaml").read_text())
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]


def test_compose_runs_two_replicas_behind_a_proxy_on_postgresql():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [s for name, s in services.items() if name.startswith("lumabot")]
    assert len(replicas) == 2
    for replica in replicas:
        assert replica["healthcheck"]["test"] == ["CMD", "lumabot", "healthcheck"]
        assert _seconds(replica["stop_grace_period"]) >= drain_seconds() + 5
        assert replica["environment"]["LUMABOT_DATABASE_URL"].startswith("postgresql://")
        assert not SECRETS - {"LUMABOT_DATABASE_URL"} & set(replica["environment"])  # from ../.env
        assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    assert len({r["environment"]["LUMABOT_REPLICA_ID"] for r in replicas}) == 2
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    proxy = services["proxy"]["command"]
    assert "lumabot-1:3000" in proxy and "lumabot-2:3000" in proxy
