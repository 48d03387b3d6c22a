"""The Kubernetes manifests: each overlay renders, every object is valid for the Kubernetes
version we target, and the settings an operator relies on are there (probes, security
context, resources, secrets by reference only, network policy, configuration mounted where
the gateway reads it)."""

from __future__ import annotations

import copy
import json
import re
import ssl
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.delegation import load_signing_key, load_trusted_keys, public_jwks
from gateway.edge.settings import load_settings
from policies.snapshot import POLICY_FILES

from .conftest import K8S, OVERLAYS, ROOT, Manifest

#: The Kubernetes release the manifests are validated against: the oldest we expect a
#: provincial platform to run. Every field used (policy/v1, autoscaling/v2, projected
#: volumes, seccompProfile) exists there.
KUBERNETES_VERSION = "1.30.0"

#: Provincial gateways' namespaces, as the delta overlay expects them.
PROVINCES = ("sh", "js", "zj", "ah")

Render = Callable[[str], list[Manifest]]


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def gateway_container(objects: list[Manifest]) -> Manifest:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def gateway_toml(objects: list[Manifest]) -> dict:
    return tomllib.loads(one(objects, "ConfigMap", "deltagate-config")["data"]["gateway.toml"])


def is_configmap(objects: list[Manifest], name: str) -> bool:
    """Whether a projected source of that name is a rendered ConfigMap (else a Secret's)."""
    return any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == name for o in objects)


def projected(objects: list[Manifest]) -> dict[str, tuple[str, str]]:
    """Files of the /etc/deltagate volume: path -> (ConfigMap or Secret name, key)."""
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    mount = next(
        m for m in gateway_container(objects)["volumeMounts"] if m["mountPath"] == "/etc/deltagate"
    )
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    files: dict[str, tuple[str, str]] = {}
    for source in volume["projected"]["sources"]:
        ref = source.get("configMap") or source["secret"]
        if "items" in ref:
            for item in ref["items"]:
                files[item["path"]] = (ref["name"], item["key"])
        else:
            configmap = one(objects, "ConfigMap", ref["name"])
            files.update({key: (ref["name"], key) for key in configmap["data"]})
    return files


# -- rendering and validation ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_validates_strictly(render: Render, overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "ConfigMap", "ServiceAccount"} <= kinds  # fmt: skip
    for o in objects:
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        assert o["metadata"]["namespace"] == f"deltagate-{overlay.removeprefix('province-')}"


def test_strict_validation_refuses_a_misspelt_field(render: Render) -> None:
    deployment = copy.deepcopy(one(render("overlays/province-sh"), "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProb"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# -- probes, ports, resources ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_liveness_on_healthz_and_readiness_on_readyz_at_the_port_served(
    render: Render, overlay: str
) -> None:
    objects = render(f"overlays/{overlay}")
    container = gateway_container(objects)
    (port,) = container["ports"]
    assert port["containerPort"] == gateway_toml(objects)["gateway"]["port"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # A gateway serving HTTPS ([tls]) is probed over HTTPS. Kubelet presents no client
    # certificate, so such a gateway must not require one at the port it is probed on.
    config = gateway_toml(objects)
    scheme = "HTTPS" if "tls" in config else "HTTP"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == port["name"], probe
        assert get.get("scheme", "HTTP") == scheme, probe
    if "tls" in config:
        assert config["tls"].get("require_client_cert") is False
    service = one(objects, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    assert (
        service["spec"]["selector"].items()
        <= one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_have_requests_and_limits(render: Render, overlay: str) -> None:
    resources = gateway_container(render(f"overlays/{overlay}"))["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_several_replicas_an_autoscaler_and_a_disruption_budget(
    render: Render, overlay: str
) -> None:
    objects = render(f"overlays/{overlay}")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb.get("maxUnavailable", 0) == 1 or pdb.get("minAvailable", 0) >= 1


# -- security ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_runs_as_non_root_read_only_without_privileges(render: Render, overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    assert pod["automountServiceAccountToken"] is False
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace)
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context.get("privileged", False) is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context["capabilities"].get("add")
        assert "command" not in container  # the image's entrypoint, `deltagate`


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_only_writable_volume_is_an_empty_dir_for_tmp(render: Render, overlay: str) -> None:
    pod = one(render(f"overlays/{overlay}"), "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert not any("hostPath" in v for v in volumes.values())
    writable = [
        m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if not m.get("readOnly")
    ]
    assert writable == ["/tmp"]
    tmp = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "sizeLimit" in volumes[tmp["name"]]["emptyDir"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_rendered(render: Render, overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    assert not [o for o in objects if o["kind"] == "Secret"]
    env = {e["name"]: e for e in gateway_container(objects)["env"]}
    secret_names = {
        "DELTAGATE_MASK_SECRET",
        "DELTAGATE_AUDIT_DSN",
        "DELTAGATE_AUDIT_CHECKPOINT_SECRET",
        "DELTAGATE_RATE_LIMIT_URL",
    }
    secret_names |= {name for name in env if name.startswith("DELTAGATE_DSN_")}
    sources = gateway_toml(objects)["sources"].values()
    secret_names |= {s["token_env"] for s in sources if "token_env" in s}  # service tokens
    assert "DELTAGATE_JWT_SECRET" not in env  # production takes RS256 keys only
    for name in secret_names:
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"], name
    for entry in env.values():
        assert not re.search(r"(postgres(ql)?|redis)://", entry.get("value", "")), entry
    for config in (o for o in objects if o["kind"] == "ConfigMap"):
        for text in config["data"].values():
            # A DSN in a ConfigMap may name a host and user, never a password.
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", text), config["metadata"]["name"]
    assert projected(objects)["jwks.json"][0] == "deltagate-keys"


def test_rate_limit_store_is_referenced_but_optional(render: Render) -> None:
    env = {e["name"]: e for e in gateway_container(render("overlays/province-sh"))["env"]}
    ref = env["DELTAGATE_RATE_LIMIT_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True  # the gateway does not read it yet: a replica starts without


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_variables_are_defined_before_they_are_used(render: Render, overlay: str) -> None:
    # Kubernetes expands $(VAR) only from variables listed earlier; a later one stays literal.
    seen: set[str] = set()
    for entry in gateway_container(render(f"overlays/{overlay}"))["env"]:
        for used in re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", entry.get("value", "")):
            assert used in seen, f"{entry['name']} uses $({used}) before it is defined"
        seen.add(entry["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_traces_go_to_the_collector(render: Render, overlay: str) -> None:
    env = {
        e["name"]: e.get("value") for e in gateway_container(render(f"overlays/{overlay}"))["env"]
    }
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector.monitoring.svc"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "deltagate"
    egress = network_egress(render(f"overlays/{overlay}"))
    assert ("monitoring", endpoint.port) in egress


# -- network policy ----------------------------------------------------------------------------


def network_rules(objects: list[Manifest], direction: str) -> list[dict]:
    rules = []
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "deltagate"}
        if direction.capitalize() in spec["policyTypes"]:
            rules += spec.get(direction, [])
    return rules


def peer_names(peer: dict) -> list[str]:
    """The namespaces (or the ipBlock, or "same namespace") a peer selects."""
    if "ipBlock" in peer:
        return [peer["ipBlock"]["cidr"]]
    if "namespaceSelector" not in peer:
        return ["."]
    selector = peer["namespaceSelector"]
    if "matchLabels" in selector:
        assert set(selector["matchLabels"]) == {"kubernetes.io/metadata.name"}, selector
        return [selector["matchLabels"]["kubernetes.io/metadata.name"]]
    (expression,) = selector["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "In"
    return list(expression["values"])


def network_egress(objects: list[Manifest]) -> set[tuple[str, int]]:
    allowed = set()
    for rule in network_rules(objects, "egress"):
        assert rule.get("to"), f"egress rule open to every address: {rule}"
        assert rule.get("ports"), f"egress rule open on every port: {rule}"
        for peer in rule["to"]:
            for name in peer_names(peer):
                allowed |= {(name, port["port"]) for port in rule["ports"]}
    return allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_only_from_frontends_monitoring_and_the_gateway_above(
    render: Render, overlay: str
) -> None:
    objects = render(f"overlays/{overlay}")
    sources = set()
    for rule in network_rules(objects, "ingress"):
        assert rule.get("from"), f"ingress rule open to all: {rule}"
        assert [p["port"] for p in rule["ports"]] == [8000]
        for peer in rule["from"]:
            sources |= set(peer_names(peer))
    expected = {"deltagate-frontends", "monitoring"}
    if overlay.startswith("province-"):
        expected.add("deltagate-delta")  # the delta gateway federates this one
    assert sources == expected


def test_province_egress_is_its_database_the_audit_database_the_store_and_the_collector(
    render: Render,
) -> None:
    egress = network_egress(render("overlays/province-sh"))
    assert {(name, port) for name, port in egress if port == 5432} == {
        ("10.31.0.10/32", 5432),  # Shanghai's database
        ("10.20.0.10/32", 5432),  # the audit database
    }
    assert (".", 6379) in egress  # the rate-limit store, beside the gateway
    assert {("kube-system", 53), ("monitoring", 4318)} <= egress
    assert {port for _, port in egress} <= {53, 5432, 6379, 4317, 4318}


def test_delta_egress_reaches_the_four_provincial_gateways_and_no_regional_database(
    render: Render,
) -> None:
    objects = render("overlays/delta")
    egress = network_egress(objects)
    assert {(f"deltagate-{p}", 8000) for p in PROVINCES} <= egress
    assert {name for name, port in egress if port == 5432} == {"10.20.0.10/32"}  # audit only
    config = gateway_toml(objects)
    assert set(config["sources"]) == {p.upper() for p in PROVINCES}
    for region, source in config["sources"].items():
        assert source["kind"] == "gateway"
        url = urlsplit(source["url"])
        assert url.scheme == "https"
        assert url.hostname == f"deltagate.deltagate-{region.lower()}.svc"
        assert (f"deltagate-{region.lower()}", url.port) in egress


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_folder_holds_gateway_toml_policies_and_keys(render: Render, overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    files = projected(objects)
    config = gateway_toml(objects)
    assert config["gateway"]["mode"] == "production"
    assert config["gateway"]["host"] == "0.0.0.0"
    assert config["auth"]["jwks_path"] in files
    policy_dir = config["policy"]["directory"]
    for name in (*POLICY_FILES, "quotas.toml"):
        configmap, key = files[f"{policy_dir}/{name}"]
        assert key in one(objects, "ConfigMap", configmap)["data"]
    for source in config["sources"].values():
        if "mapping" in source:
            configmap, key = files[source["mapping"]]
            assert key in one(objects, "ConfigMap", configmap)["data"]


def test_province_config_with_the_deployments_secrets_passes_production_checks(
    render: Render, tmp_path: Path
) -> None:
    objects = render("overlays/province-sh")
    for path, (name, key) in projected(objects).items():
        if not is_configmap(objects, name):
            continue  # a Secret's: the test below makes stand-ins for them
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(one(objects, "ConfigMap", name)["data"][key])
    secret_env = {
        e["name"]: "from-a-secret"
        for e in gateway_container(objects)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    secret_env["DELTAGATE_RATE_LIMIT_URL"] = "redis://from-a-secret:6379/0"  # a URL is checked
    settings = load_settings(tmp_path / "gateway.toml", env=secret_env)  # checks as serve does
    assert settings.production
    assert settings.mask_secret == settings.audit_dsn == "from-a-secret"
    assert settings.audit_checkpoint_secret == "from-a-secret"
    assert settings.rate_limit_url == "redis://from-a-secret:6379/0"
    assert [(s.region, s.dsn) for s in settings.sources] == [("SH", "from-a-secret")]
    assert settings.sources[0].mapping.is_file()
    assert settings.policy_dir == tmp_path / "policies"


def secret_file(path: str, key: Any, certificate: bytes) -> bytes:
    """Stand-in content for a file the Deployment mounts from a Secret, by the kind its name
    says: a private key, a JWKS of the key's public part, or a certificate (also the CA)."""
    if path.endswith(".json"):
        return json.dumps(public_jwks(key, "test-kid")).encode()
    if path.endswith((".key", "-key.pem")):
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return certificate


def self_signed(key: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deltagate.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_config_is_accepted_with_what_the_deployment_provides(
    render: Render, overlay: str, tmp_path: Path
) -> None:
    """gateway.toml as the Deployment runs it: /etc/deltagate holds only the files the
    projected volume mounts (ConfigMaps as rendered, Secrets as stand-ins made here), and the
    environment holds only the variables the container's env sets from Secrets."""
    objects = render(f"overlays/{overlay}")
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(key)
    mounted = projected(objects)
    for path, (name, item) in mounted.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_configmap(objects, name):
            target.write_text(one(objects, "ConfigMap", name)["data"][item])
        else:
            target.write_bytes(secret_file(path, key, certificate))
    env = {
        e["name"]: "from-a-secret"
        for e in gateway_container(objects)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    env["DELTAGATE_RATE_LIMIT_URL"] = "redis://from-a-secret:6379/0"
    settings = load_settings(tmp_path / "gateway.toml", env=env)  # as `serve` checks it

    # Every file the configuration names is one the volume mounts, and it reads as what it is.
    named = [settings.jwks_path, *(settings.policy_dir / f for f in POLICY_FILES)]
    named += [s.mapping for s in settings.sources if s.mapping is not None]
    for source in (*settings.sources, *([settings.upper] if settings.upper else [])):
        if source.tls is not None:
            named += [p for p in (source.tls.ca, source.tls.cert, source.tls.key) if p]
            assert isinstance(source.options()["tls"], ssl.SSLContext)  # reads cert, key, CA
        if source.kind == "gateway":
            assert source.token == "from-a-secret", source.token_env  # from a secretKeyRef
    if settings.delegation is not None:
        if settings.delegation.signing_key is not None:
            named.append(settings.delegation.signing_key)
            load_signing_key(settings.delegation.signing_key)
        if settings.delegation.trusted_jwks is not None:
            named.append(settings.delegation.trusted_jwks)
            issuers = settings.delegation.trusted_issuers
            assert load_trusted_keys(settings.delegation.trusted_jwks, issuers)
    if settings.tls is not None:
        named += [p for p in (settings.tls.cert, settings.tls.key, settings.tls.client_ca) if p]
        assert settings.tls.uvicorn_options()["ssl_certfile"]
    for path in named:
        assert path is not None
        assert path.relative_to(tmp_path).as_posix() in mounted, path

    if overlay == "delta":
        # The cascade: every province over HTTPS with the delta platform's client certificate,
        # a service token from a Secret and a delegation addressed to the province's id.
        assert settings.delegation is not None
        assert settings.delegation.id == "deltagate-delta"
        for source in settings.sources:
            assert source.kind == "gateway"
            assert (source.url or "").startswith("https://")
            assert source.delegation_audience == f"deltagate-{source.region.lower()}"
            assert source.tls is not None
            assert source.tls.cert is not None
    else:
        # A province accepts the delta gateway's delegations, and only with an acting role.
        assert settings.delegation is not None
        assert settings.delegation.trusted_issuers == ("deltagate-delta",)
        assert settings.delegation.acting_roles == ("delta_platform",)


def test_shipped_policies_and_mappings_are_what_the_base_deploys() -> None:
    pairs = [
        (ROOT / "policies" / n, K8S / "base/policies" / n) for n in (*POLICY_FILES, "quotas.toml")
    ]
    pairs += [
        (shipped, K8S / "base/mappings" / shipped.name)
        for shipped in sorted((ROOT / "gateway/sources/mappings").glob("*.toml"))
    ]
    for shipped, deployed in pairs:
        assert deployed.read_text() == shipped.read_text(), f"{deployed} is stale: make k8s-config"


# -- the image ---------------------------------------------------------------------------------


def dockerfile_final_stage() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [
        tuple(line.strip().split(None, 1))
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [i for i, (op, _) in enumerate(instructions) if op.upper() == "FROM"]
    assert len(stages) >= 2, "a multi-stage build"
    return [(op.upper(), arg) for op, arg in instructions[stages[-1] :]]


def test_image_runs_non_root_as_the_manifests_expect(render: Render) -> None:
    stage = dict(dockerfile_final_stage())
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage["FROM"])
    user, _, group = stage["USER"].partition(":")
    objects = render("overlays/province-sh")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert int(user) == pod["securityContext"]["runAsUser"] > 0
    assert int(group) == pod["securityContext"]["runAsGroup"]
    container = pod["containers"][0]
    assert json.loads(stage["ENTRYPOINT"]) == ["deltagate"]
    command = json.loads(stage["CMD"])
    assert (
        command[:3] == container["args"][:3] == ["serve", "--config", "/etc/deltagate/gateway.toml"]
    )
    assert int(stage["EXPOSE"]) == container["ports"][0]["containerPort"]
    assert "pip install ." in (ROOT / "Dockerfile").read_text()
    assert "TMPDIR=/tmp" in stage["ENV"]  # the emptyDir, where `serve --workers N` writes


def test_manifests_name_the_image_kustomize_sets() -> None:
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    deployment = yaml.safe_load((K8S / "base/deployment.yaml").read_text())
    (image,) = base["images"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image["name"]
    assert image["newTag"] not in ("", "latest")
