"""Where to send and as whom: flags first, then environment variables, then defaults.

``--url`` / ``DIPGW_URL`` (default ``http://127.0.0.1:8080``), ``--org`` / ``DIPGW_ORG``,
``--key-file`` / ``DIPGW_KEY_FILE`` (default: the development key the demo gateway writes,
``$DIPGW_DATA_DIR/dev-keys/<ORG>.jwk.json``) and ``DIPGW_AUDIENCE`` (``urn:dipgw``).
How strictly to read the file: ``--strict`` / ``DIPGW_STRICT`` (default off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import ConfigError
from gateway import keys
from gateway.client import Credentials
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError
from gateway.services.directory import dev_key_path

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    org: str
    key_file: Path
    audience: str

    def credentials(self) -> Credentials:
        try:
            private = keys.read_private(self.key_file)
        except ConfigurationError as error:
            raise ConfigError(f"cannot sign as {self.org}: {error.detail}") from None
        return Credentials(org_code=self.org, private_jwk=private, audience=self.audience)


def resolve(
    *, url: str | None, org: str | None, key_file: str | None,
    env: Mapping[str, str] | None = None,
) -> Target:
    env = os.environ if env is None else env
    org = (org or env.get("DIPGW_ORG") or "").strip().upper()
    if not org:
        raise ConfigError(
            "say which organisation sends: --org CODE or DIPGW_ORG (e.g. CRT-IPS-MC)"
        )
    key = key_file or env.get("DIPGW_KEY_FILE")
    data_dir = Path(env.get("DIPGW_DATA_DIR") or str(Settings.data_dir))
    return Target(
        url=(url or env.get("DIPGW_URL") or DEFAULT_URL).rstrip("/"),
        org=org,
        key_file=Path(key) if key else dev_key_path(Settings(data_dir=data_dir).dev_keys_dir, org),
        audience=env.get("DIPGW_AUDIENCE") or Settings.audience,
    )


_ON = frozenset({"1", "yes", "true", "on"})
_OFF = frozenset({"", "0", "no", "false", "off"})


def _switch(flag: bool, variable: str, meaning: str, env: Mapping[str, str] | None) -> bool:
    """A command-line flag, or its environment variable set on. A value that is neither
    on nor off is an error, not a guess: guessing off would undo what it was set for."""
    if flag:
        return True
    env = os.environ if env is None else env
    raw = env.get(variable, "").strip().lower()
    if raw in _ON | _OFF:
        return raw in _ON
    raise ConfigError(f"{variable}={raw!r} is neither 1 ({meaning}) nor 0")


def strict(flag: bool, env: Mapping[str, str] | None = None) -> bool:
    """Whether a column the adapter does not read refuses the file (``--strict`` or
    ``DIPGW_STRICT=1``) rather than being warned about."""
    return _switch(flag, "DIPGW_STRICT", "refuse a file with unknown columns", env)


def sign(flag: bool, env: Mapping[str, str] | None = None) -> bool:
    """Whether each message goes as the sender's SD-JWT (``--sign`` or ``DIPGW_SIGN=1``),
    so every recipient can check what was sent without trusting the gateway."""
    return _switch(flag, "DIPGW_SIGN", "sign every message", env)
