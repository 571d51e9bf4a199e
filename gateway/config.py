"""Configuration, read once from the environment and passed in through the app factory."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.channels.email import SmtpSettings
from gateway.channels.mesh import MeshSettings
from gateway.domain.errors import ConfigurationError
from gateway.keyfiles import DELIVERY_KEY

_ENVIRONMENTS = ("development", "production")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs to start; nothing is read from the environment later."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    amqp_url: str | None = None
    database_url: str | None = None
    environment: str = "development"
    audience: str = "urn:dipgw"
    max_token_lifetime_s: int = 3600
    clock_skew_s: int = 30
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32
    seed_demo_directory: bool = True
    relay_interval_s: float = 0.5
    # Intake pauses (503 with Retry-After) while delivery is this far behind
    # (gateway.services.backpressure), and is read this often.
    delivery_backlog_limit: int = 2000
    delivery_lag_limit_s: float = 1.0
    backlog_check_s: float = 0.25
    amqp_prefix: str = "dipgw"
    amqp_prefetch: int = 200
    delivery_limit: int = 5
    expiry_s: int = 5 * 24 * 3600
    expiry_check_s: float = 60.0
    alert_escalation_s: int = 24 * 3600
    audit_origin: str = "dipgw.local/audit"
    audit_keys_dir_override: Path | None = None
    # One directory of the installation's keys (``dipgw keys init``), the same copy in
    # every process; may be a read-only mount (gateway.keyfiles).
    secrets_dir: Path | None = None
    checkpoint_interval_s: float = 10.0
    # Witnesses asked to cosign each checkpoint (gateway.services.witnessing): a file of
    # lines "<witness verifier key> <submission URL>"; none when unset. Each request gives
    # up after the timeout; a witness that is down never holds up the log.
    witnesses_file: Path | None = None
    witness_timeout_s: float = 5.0
    push_retry_base_s: float = 5.0
    push_retry_cap_s: float = 600.0
    mesh_ack_check_s: float = 60.0
    public_url: str | None = None
    delivery_key_file_override: Path | None = None
    smtp: SmtpSettings | None = None
    mesh: MeshSettings | None = None
    # Rate limits (gateway.http.limits): requests per second and the burst saved up; a
    # rate of 0 is no limit. The defaults sit above what one gateway process serves, so
    # only floods meet them; failed authentications have a bucket of their own.
    rate_address_per_s: float = 1000.0
    rate_address_burst: int = 2000
    rate_auth_failures_per_s: float = 1.0
    rate_auth_failures_burst: int = 30
    rate_org_per_s: float = 1000.0
    rate_org_burst: int = 2000
    rate_max_tracked: int = 100_000
    # Reverse proxies whose X-Forwarded-For is believed; nobody else's is.
    rate_trusted_proxies: tuple[Network, ...] = ()
    # Who may scrape GET /metrics (gateway.http.routes.metrics): volumes are not personal
    # data but are not for everyone; anyone else is answered 404.
    metrics_networks: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"),
    )
    # How often the directory (people, grants, keys) is re-read, so that what another
    # gateway process changed is honoured here too (gateway.services.directory), seconds.
    directory_refresh_s: float = 5.0
    # How often a standby tries to become the leader for the singleton jobs, and the
    # leader checks it still is (gateway.services.leadership), seconds.
    leader_retry_s: float = 5.0
    # Read timeouts (gateway.http.server, gateway.http.body), seconds.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # OpenID Connect sign-in to the console (gateway.console.oidc). Client secrets, by
    # organisation code, from DIPGW_OIDC_CLIENT_SECRET_<CODE> (CJIT-NFK: ..._CJIT_NFK):
    # never in the directory or the repository. A public client (PKCE only) has none.
    oidc_client_secrets: Mapping[str, str] = field(default_factory=dict)
    # In production an ID token must assert multi-factor sign-in: an RFC 8176 ``amr``
    # value, or this ``acr`` (DIPGW_OIDC_MFA_ACR) where a provider says it that way.
    oidc_mfa_acr: str | None = None
    # A development OpenID Provider every demo organisation registers (make run; never in
    # production, where nothing is seeded).
    demo_oidc_issuer: str | None = None
    demo_oidc_client_id: str = "dipgw-console"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "dipgw.sqlite3"

    @property
    def audit_keys_dir(self) -> Path:
        """Signing and pseudonym keys: outside the database, ideally outside the data dir."""
        return self.audit_keys_dir_override or self.secrets_dir or self.data_dir / "audit-keys"

    @property
    def delivery_key_file(self) -> Path:
        """The gateway's own signing key for webhook pushes (0600, made on first start in
        development only)."""
        if self.delivery_key_file_override is not None:
            return self.delivery_key_file_override
        if self.secrets_dir is not None:
            return self.secrets_dir / DELIVERY_KEY
        return self.data_dir / "delivery-key.jwk.json"

    @property
    def base_url(self) -> str:
        """Where people reach this gateway: the reference in e-mail notices."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def dev_keys_dir(self) -> Path:
        """Private keys of the demo organisations; never used in production."""
        return self.data_dir / "dev-keys"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("DIPGW_ENV", "development")
        if environment not in _ENVIRONMENTS:
            raise ConfigurationError(
                f"DIPGW_ENV must be one of {', '.join(_ENVIRONMENTS)}, not {environment!r}"
            )
        database_url = env.get("DIPGW_DATABASE_URL") or None
        if database_url is not None and not database_url.startswith(
            ("postgresql://", "sqlite:")
        ):
            raise ConfigurationError(
                "DIPGW_DATABASE_URL must be a postgresql:// URL (or unset for SQLite)"
            )
        return cls(
            host=env.get("DIPGW_HOST", cls.host),
            port=_int(env, "DIPGW_PORT", cls.port),
            data_dir=Path(env.get("DIPGW_DATA_DIR", str(cls.data_dir))),
            amqp_url=env.get("DIPGW_AMQP_URL") or None,
            database_url=database_url,
            environment=environment,
            audience=env.get("DIPGW_AUDIENCE", cls.audience),
            max_token_lifetime_s=_int(env, "DIPGW_MAX_TOKEN_LIFETIME", cls.max_token_lifetime_s),
            max_body_bytes=_int(env, "DIPGW_MAX_BODY_BYTES", cls.max_body_bytes),
            amqp_prefix=env.get("DIPGW_AMQP_PREFIX", cls.amqp_prefix),
            amqp_prefetch=_int(env, "DIPGW_AMQP_PREFETCH", cls.amqp_prefetch),
            delivery_limit=_int(env, "DIPGW_DELIVERY_LIMIT", cls.delivery_limit),
            delivery_backlog_limit=_at_least_one(env, "DIPGW_DELIVERY_BACKLOG_LIMIT",
                                                 cls.delivery_backlog_limit),
            delivery_lag_limit_s=_positive(env, "DIPGW_DELIVERY_LAG_LIMIT_SECONDS",
                                           cls.delivery_lag_limit_s),
            expiry_s=_int(env, "DIPGW_EXPIRY_SECONDS", cls.expiry_s),
            alert_escalation_s=_int(env, "DIPGW_ALERT_ESCALATION_SECONDS",
                                    cls.alert_escalation_s),
            audit_origin=env.get("DIPGW_AUDIT_ORIGIN", cls.audit_origin),
            audit_keys_dir_override=(
                Path(env["DIPGW_AUDIT_KEYS_DIR"]) if env.get("DIPGW_AUDIT_KEYS_DIR") else None
            ),
            secrets_dir=Path(env["DIPGW_SECRETS_DIR"]) if env.get("DIPGW_SECRETS_DIR") else None,
            witnesses_file=Path(env["DIPGW_WITNESSES"]) if env.get("DIPGW_WITNESSES") else None,
            witness_timeout_s=_positive(env, "DIPGW_WITNESS_TIMEOUT_SECONDS",
                                        cls.witness_timeout_s),
            push_retry_base_s=_int(env, "DIPGW_PUSH_RETRY_BASE_SECONDS",
                                   int(cls.push_retry_base_s)),
            push_retry_cap_s=_int(env, "DIPGW_PUSH_RETRY_CAP_SECONDS", int(cls.push_retry_cap_s)),
            public_url=env.get("DIPGW_PUBLIC_URL") or None,
            delivery_key_file_override=(
                Path(env["DIPGW_DELIVERY_KEY_FILE"]) if env.get("DIPGW_DELIVERY_KEY_FILE")
                else None
            ),
            smtp=_smtp(env),
            mesh=MeshSettings.from_env(env),
            rate_address_per_s=_float(env, "DIPGW_RATE_ADDRESS_PER_SECOND",
                                      cls.rate_address_per_s),
            rate_address_burst=_int(env, "DIPGW_RATE_ADDRESS_BURST", cls.rate_address_burst),
            rate_auth_failures_per_s=_float(env, "DIPGW_RATE_AUTH_FAILURES_PER_SECOND",
                                            cls.rate_auth_failures_per_s),
            rate_auth_failures_burst=_int(env, "DIPGW_RATE_AUTH_FAILURES_BURST",
                                          cls.rate_auth_failures_burst),
            rate_org_per_s=_float(env, "DIPGW_RATE_ORG_PER_SECOND", cls.rate_org_per_s),
            rate_org_burst=_int(env, "DIPGW_RATE_ORG_BURST", cls.rate_org_burst),
            rate_max_tracked=_int(env, "DIPGW_RATE_MAX_TRACKED", cls.rate_max_tracked),
            rate_trusted_proxies=_networks(env, "DIPGW_RATE_TRUSTED_PROXIES"),
            metrics_networks=_networks(env, "DIPGW_METRICS_NETWORKS", "127.0.0.1/32,::1/128"),
            directory_refresh_s=_positive(env, "DIPGW_DIRECTORY_REFRESH_SECONDS",
                                          cls.directory_refresh_s),
            leader_retry_s=_positive(env, "DIPGW_LEADER_RETRY_SECONDS", cls.leader_retry_s),
            header_timeout_s=_positive(env, "DIPGW_HEADER_TIMEOUT", cls.header_timeout_s),
            body_timeout_s=_positive(env, "DIPGW_BODY_TIMEOUT", cls.body_timeout_s),
            oidc_client_secrets=_oidc_client_secrets(env),
            oidc_mfa_acr=env.get("DIPGW_OIDC_MFA_ACR") or None,
            demo_oidc_issuer=env.get("DIPGW_DEMO_OIDC_ISSUER") or None,
            demo_oidc_client_id=env.get("DIPGW_DEMO_OIDC_CLIENT_ID", cls.demo_oidc_client_id),
            # Demo organisations with generated keys must never appear in production.
            seed_demo_directory=environment != "production",
        )


_OIDC_SECRET_PREFIX = "DIPGW_OIDC_CLIENT_SECRET_"  # noqa: S105 (a variable name)


def _oidc_client_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Each organisation's OpenID Connect client secret, by its directory code."""
    return {
        name.removeprefix(_OIDC_SECRET_PREFIX).replace("_", "-"): value
        for name, value in env.items()
        if name.startswith(_OIDC_SECRET_PREFIX) and value
    }


def _smtp(env: Mapping[str, str]) -> SmtpSettings | None:
    """E-mail notices are sent only when ``DIPGW_SMTP_URL`` names a server."""
    url = env.get("DIPGW_SMTP_URL")
    if not url:
        return None
    try:
        return SmtpSettings.from_url(
            url,
            env.get("DIPGW_SMTP_FROM", "dipgw@localhost"),
            env.get("DIPGW_SMTP_CA_FILE") or None,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


def _at_least_one(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value == 0:
        raise ConfigurationError(f"{name} must be at least 1")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ConfigurationError(f"{name} must be a finite number, not negative")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value == 0:
        raise ConfigurationError(f"{name} must be more than 0 seconds")
    return value


def _networks(env: Mapping[str, str], name: str, default: str = "") -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks, e.g. ``127.0.0.1, 10.0.0.0/8``; unset or
    empty is ``default``."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in (env.get(name) or default).split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None
