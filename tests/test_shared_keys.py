"""Keys the same for every gateway process (issue 13): production never makes a key,
development makes each once however many processes start together, ``dipgw keys init``
makes an installation's set, and a read-only secrets mount is read and never written."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import Any

import pytest

from gateway import keyfiles
from gateway.app import create_app
from gateway.cli import main
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError
from gateway.http.services import SERVICES
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import SubjectKeys
from gateway.services.checkpoints import AuditKeys, pseudonym_key
from gateway.tlog.note import parse_signed_note
from tests.backends import make_settings

KEY_FILES = ("current.key", "pseudonym.key", "delivery.jwk")
ORIGIN = "dipgw.local/audit"


def init_keys(folder: Path) -> Path:
    """An installation's key set (``dipgw keys init``), which production needs to start."""
    assert main(["keys", "init", str(folder)], {}) == 0
    return folder


def production(data_dir: Path, secrets_dir: Path) -> Settings:
    return Settings.from_env({
        "DIPGW_ENV": "production", "DIPGW_DATA_DIR": str(data_dir),
        "DIPGW_SECRETS_DIR": str(secrets_dir),
    })


def the_keys(folder: Path) -> tuple[str, bytes, str]:
    """What one process reads or makes: audit verifier key, pseudonym key, webhook key."""
    return (
        AuditKeys(folder, ORIGIN, create=True).current.verifier_key(),
        pseudonym_key(folder, create=True),
        keyfiles.delivery_key(folder / keyfiles.DELIVERY_KEY, create=True)["d"],
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every name under ``folder`` with its mode, owner and modification time."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(folder))] = (info.st_mode, info.st_uid, info.st_mtime_ns)
    return found


@pytest.mark.parametrize("missing", KEY_FILES)
async def test_production_refuses_to_start_without_each_key(
    aiohttp_client: Any, tmp_path: Path, missing: str
) -> None:
    secrets_dir = tmp_path / "secrets"
    init_keys(secrets_dir)
    (secrets_dir / missing).unlink()
    with pytest.raises(ConfigurationError) as refused:
        await aiohttp_client(create_app(production(tmp_path / "data", secrets_dir)))
    message = str(refused.value)
    assert str(secrets_dir / missing) in message and "does not exist" in message
    assert "dipgw keys init" in message and "DIPGW_SECRETS_DIR" in message
    # Nothing made, nothing opened: the key is still missing and no database exists.
    assert not (secrets_dir / missing).exists()
    assert not (tmp_path / "data").exists()


async def test_production_without_a_secrets_dir_names_the_default_file(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(data_dir=tmp_path, environment="production")
    with pytest.raises(ConfigurationError, match=r"audit-keys/current\.key does not exist"):
        await aiohttp_client(create_app(settings))
    assert list(tmp_path.iterdir()) == []


def _thread_start(
    folder: Path, barrier: threading.Barrier, seen: list[tuple[str, bytes, str]]
) -> None:
    barrier.wait()
    seen.append(the_keys(folder))


def test_threads_starting_together_make_one_key_set(tmp_path: Path) -> None:
    for attempt in range(10):
        folder = tmp_path / str(attempt)
        barrier = threading.Barrier(8)
        seen: list[tuple[str, bytes, str]] = []
        threads = [
            threading.Thread(target=_thread_start, args=(folder, barrier, seen))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 8 and len(set(seen)) == 1
        assert sorted(p.name for p in folder.iterdir()) == sorted(KEY_FILES)


def _process_start(folder: str, barrier: ProcessBarrier, out: Any) -> None:
    barrier.wait()
    out.put(the_keys(Path(folder)))


def test_processes_starting_together_make_one_key_set(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=_process_start, args=(str(tmp_path), barrier, out))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    seen = {out.get(timeout=60) for _ in processes}
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(seen) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(KEY_FILES)


def test_a_process_that_loses_the_race_keeps_the_winners_key(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    assert keyfiles.create_once(path, b"w" * 32)
    assert not keyfiles.create_once(path, b"l" * 32)
    assert path.read_bytes() == b"w" * 32
    assert [p.name for p in tmp_path.iterdir()] == ["pseudonym.key"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o600


async def test_keys_init_gives_two_gateways_the_same_pseudonyms_and_signers(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_dir = tmp_path / "secrets"
    init_keys(secrets_dir)
    printed = capsys.readouterr().out
    assert sorted(p.name for p in secrets_dir.iterdir()) == sorted(KEY_FILES)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in secrets_dir.iterdir())
    assert secrets_dir.stat().st_mode & 0o777 == 0o700

    seen = []
    for name in ("a", "b"):  # two hosts: their own data, the same secrets
        client = await aiohttp_client(create_app(production(tmp_path / name, secrets_dir)))
        services = client.server.app[SERVICES]
        index = await services.audit.record(AuditEvent(
            action=AuditAction.CONSENT_RECORDED, at=datetime.now(UTC), actor="test",
            subject=SubjectKeys(pnc="2001/0012345A", name_dob=None),
        ))
        entry = json.loads((await services.audit.entries(index, index + 1))[0])
        _, note = await services.checkpointer.integrate()
        signatures = parse_signed_note(note).signatures
        seen.append((
            entry["subject"],
            [s.key_id for s in signatures],
            services.audit_keys.verifier_keys(),
            services.delivery_key_public["kid"],
        ))
        await client.close()
    assert seen[0] == seen[1]
    subject, key_ids, verifier_keys, kid = seen[0]
    assert subject.startswith("psn:") and len(key_ids) == 1
    assert f"audit verifier key: {verifier_keys[0]}" in printed
    assert f"webhook signing key id: {kid}" in printed


def test_keys_init_refuses_to_overwrite_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pseudonym.key").write_bytes(b"k" * 32)
    assert main(["keys", "init", str(tmp_path)], {}) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'pseudonym.key'} already exist" in error and "never overwrites" in error
    assert [p.name for p in tmp_path.iterdir()] == ["pseudonym.key"]
    assert (tmp_path / "pseudonym.key").read_bytes() == b"k" * 32


def test_keys_init_help_says_what_each_file_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "init", "--help"], {})
    text = capsys.readouterr().out
    assert all(name in text for name in KEY_FILES)
    assert "every gateway process" in text and "same copy" in text


def kubernetes_secret_volume(folder: Path, owner: int) -> None:
    """The layout a Kubernetes Secret volume has: files in a timestamped directory, reached
    through the ``..data`` symlink, mode 0440 (defaultMode), the directory read-only."""
    source = folder.parent / "made"
    init_keys(source)
    timestamped = folder / "..2025_01_01_00_00_00.000000000"
    timestamped.mkdir(parents=True)
    for name in KEY_FILES:
        (timestamped / name).write_bytes((source / name).read_bytes())
        os.chown(timestamped / name, owner, owner)
        (timestamped / name).chmod(0o440 if owner != os.geteuid() else 0o400)
        (folder / name).symlink_to(Path("..data") / name)
    (folder / "..data").symlink_to(timestamped.name)
    timestamped.chmod(0o555)
    folder.chmod(0o555)


async def test_a_read_only_secrets_mount_is_read_and_never_written(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    # Kubernetes' files belong to root, read through fsGroup: another user than ours.
    owner = 4242 if os.geteuid() == 0 else os.geteuid()
    kubernetes_secret_volume(secrets_dir, owner)
    before = snapshot(secrets_dir)
    seen = []
    for settings in (
        production(tmp_path / "prod", secrets_dir),
        make_settings(data_dir=tmp_path / "dev", secrets_dir=secrets_dir),  # development too
    ):
        client = await aiohttp_client(create_app(settings))
        services = client.server.app[SERVICES]
        await services.checkpointer.integrate()
        seen.append((services.audit_keys.verifier_keys(), services.delivery_key_public))
        await client.close()
    assert seen[0] == seen[1]
    assert snapshot(secrets_dir) == before


async def test_a_rotation_on_a_read_only_mount_signs_with_the_new_key_and_keeps_the_files(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_dir = tmp_path / "secrets"
    init_keys(secrets_dir)
    old = AuditKeys(secrets_dir, ORIGIN, create=False).current.verifier_key()
    assert main(["audit", "rotate-key"], {"DIPGW_SECRETS_DIR": str(secrets_dir)}) == 0
    secrets_dir.chmod(0o555)
    # Root may write anywhere; the gateway asks access(2), as a read-only mount answers.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) ==
                        secrets_dir and mode == os.W_OK else real_access(path, mode, **kw))
    before = snapshot(secrets_dir)
    client = await aiohttp_client(create_app(production(tmp_path / "data", secrets_dir)))
    services = client.server.app[SERVICES]
    keys_now = services.audit_keys.verifier_keys()
    assert keys_now[1] == old and keys_now[0] != old
    await services.audit.record(AuditEvent(
        action=AuditAction.CONSENT_RECORDED, at=datetime.now(UTC), actor="test"))
    _, note = await services.checkpointer.integrate()
    assert [s.key_id for s in parse_signed_note(note).signatures] == [
        services.audit_keys.current.key_id
    ]
    rotations = [
        json.loads(e) for e in await services.audit.entries(0, await services.audit.size())
        if json.loads(e)["action"] == AuditAction.SIGNING_KEY_ROTATED.value
    ]
    assert len(rotations) == 1
    await client.close()
    assert snapshot(secrets_dir) == before


@pytest.mark.parametrize(("mode", "owner", "says"), [
    (0o644, "other", "readable by every user"),
    (0o640, "us", "chmod 600"),
    (0o604, "other", "defaultMode"),
])
def test_key_files_others_may_read_are_refused(
    tmp_path: Path, mode: int, owner: str, says: str
) -> None:
    init_keys(tmp_path)
    path = tmp_path / "pseudonym.key"
    if owner == "other":
        if os.geteuid() != 0:
            pytest.skip("making a file another user's needs root")
        os.chown(path, 4242, 4242)
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match=says) as refused:
        pseudonym_key(tmp_path, create=False)
    assert str(path) in str(refused.value)


def test_a_group_readable_key_of_another_owner_is_accepted(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file another user's needs root")
    init_keys(tmp_path)
    path = tmp_path / "pseudonym.key"
    os.chown(path, 4242, 4242)
    path.chmod(0o440)
    assert len(pseudonym_key(tmp_path, create=False)) == 32


def test_the_secrets_dir_is_the_default_and_explicit_files_win(tmp_path: Path) -> None:
    shared = Settings.from_env({"DIPGW_SECRETS_DIR": str(tmp_path)})
    assert shared.audit_keys_dir == tmp_path
    assert shared.delivery_key_file == tmp_path / "delivery.jwk"
    explicit = Settings.from_env({
        "DIPGW_SECRETS_DIR": str(tmp_path), "DIPGW_AUDIT_KEYS_DIR": "/a",
        "DIPGW_DELIVERY_KEY_FILE": "/b/key.jwk",
    })
    assert explicit.audit_keys_dir == Path("/a")
    assert explicit.delivery_key_file == Path("/b/key.jwk")
    assert Settings.from_env({"DIPGW_DATA_DIR": "v"}).audit_keys_dir == Path("v/audit-keys")


def test_a_key_development_cannot_make_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    with pytest.raises(ConfigurationError, match="cannot be made here") as refused:
        pseudonym_key(tmp_path / "not-a-directory", create=True)
    assert "pseudonym.key" in str(refused.value) and "dipgw keys init" in str(refused.value)
