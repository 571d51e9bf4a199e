"""The gateway's own secret key files: read the same copy in every process, or make one.

Several gateway processes (on several hosts, behind one load balancer, on one database)
must sign checkpoints with the same audit key, pseudonymise with the same pseudonym key
(or one person's entries carry a different pseudonym per process) and sign webhooks with
the same delivery key. So in production (``DIPGW_ENV=production``) the gateway never makes
a key: a missing file stops start-up, naming the file and ``dipgw keys init``, which makes
the set once for the installation. In development a missing key is made on first start,
race-free across processes sharing the directory: each writes its candidate to a private
temporary name and hard-links it into place (``link(2)`` fails with ``EEXIST`` rather than
replacing, unlike ``rename(2)``), so exactly one candidate wins and every process then
reads the winner's key.

Permissions: a key file owned by the gateway's user must be 0600 or stricter (``chmod
600``), as the gateway creates it. A key file owned by another user (a Kubernetes Secret
volume's files belong to root, readable through ``fsGroup``; a file provisioned as
``root:dipgw 0440``) may be group-readable, since that is how this process reads it, but
never readable by others (Kubernetes' default ``defaultMode`` 0644 is refused: set 0400
or 0440). Symbolic links are followed (Secret volumes link each file through ``..data``)
and nothing is ever written or ``chmod``-ed in a directory that only holds keys to read.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from gateway import keys
from gateway.domain.errors import ConfigurationError

DELIVERY_KEY = "delivery.jwk"

INIT_HINT = (
    "In production (DIPGW_ENV=production) the gateway never makes keys, so that every "
    "process holds the same copy: create the set once with `dipgw keys init DIR`, copy DIR "
    "to every gateway process and name it in DIPGW_SECRETS_DIR"
)


def missing(path: Path, what: str, variable: str) -> ConfigurationError:
    """The start-up error for a key production will not make."""
    return ConfigurationError(f"{path} does not exist: it should hold {what}. {INIT_HINT} "
                              f"(or point {variable} at the file's directory).")


def create_once(path: Path, data: bytes) -> bool:
    """Make ``path`` hold ``data`` (0600) unless it exists; False when another process won.

    The candidate is written whole under a temporary name opened with ``O_EXCL`` and then
    hard-linked into place, so a reader never sees a partly written key and two processes
    starting together end with one key between them.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigurationError(
            f"{path} does not exist and cannot be made here ({exc.strerror}); create the "
            "keys with `dipgw keys init DIR`"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def read_secret(path: Path) -> bytes:
    """A key file's bytes, refused when others than its intended readers may read it
    (the rule in this module's docstring). Symbolic links are followed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigurationError(f"no key file at {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{path} is not a regular file")
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        raise ConfigurationError(
            f"{path} must be readable by its owner only (chmod 600): it is "
            f"{stat.S_IMODE(info.st_mode):04o}"
        )
    if info.st_mode & 0o007:
        raise ConfigurationError(
            f"{path} is readable by every user ({stat.S_IMODE(info.st_mode):04o}): give it "
            "mode 0400 or 0440 (in Kubernetes, the Secret volume's defaultMode)"
        )
    return path.read_bytes()


def delivery_key(path: Path, *, create: bool) -> dict[str, Any]:
    """The gateway's webhook signing key (a private Ed25519 JWK), made here only when
    ``create`` (development)."""
    if not path.exists():
        if not create:
            raise missing(path, "the webhook signing key (a private JWK)",
                          "DIPGW_DELIVERY_KEY_FILE")
        create_once(path, json.dumps(keys.generate("EdDSA")).encode("utf-8"))
    return keys.parse_private(path, read_secret(path))
