"""The ``dipgw`` command as a new user meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway import keys
from gateway.app import create_app
from gateway.cli import main
from gateway.client import Credentials
from tests.backends import database_env, make_settings
from tests.conftest import EXAMPLES

RA1_FILE = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


@pytest.mark.parametrize("command", ["serve", "token", "send", "inbox", "status"])
def test_every_command_explains_itself(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "usage: dipgw" in result.stdout


def test_token_is_refused_in_production(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["token", "--org", "CJIT-SFK"], {"DIPGW_ENV": "production",
                                                  "DIPGW_DATA_DIR": str(tmp_path)})
    assert code != 0
    assert "production" in capsys.readouterr().err


def test_token_without_a_seeded_directory_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["token", "--org", "CJIT-SFK"], {"DIPGW_DATA_DIR": str(tmp_path)})
    assert code != 0
    assert "make run" in capsys.readouterr().err


def test_token_carries_the_claims_the_gateway_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway import keys
    from gateway.services.directory import dev_key_path

    keys.write_private(dev_key_path(tmp_path / "dev-keys", "CJIT-SFK"), keys.generate())
    code = main(["token", "--org", "CJIT-SFK", "--role", "spoc", "--ttl", "120"],
                {"DIPGW_DATA_DIR": str(tmp_path)})
    assert code == 0
    token = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "CJIT-SFK"
    assert claims["role"] == "spoc"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["aud"] == "urn:dipgw"
    assert claims["jti"]


def test_send_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["send", str(tmp_path / "nope.json")], {"DIPGW_DATA_DIR": str(tmp_path)})
    assert code != 0
    assert "nope.json" in capsys.readouterr().err


def test_send_to_a_gateway_that_is_not_running_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway import keys
    from gateway.services.directory import dev_key_path

    keys.write_private(dev_key_path(tmp_path / "dev-keys", "POL-SFK-IPS"), keys.generate())
    code = main(["send", str(RA1_FILE), "--url", "http://127.0.0.1:9"],
                {"DIPGW_DATA_DIR": str(tmp_path)})
    assert code == 3
    assert "cannot reach the gateway" in capsys.readouterr().err


def test_bad_configuration_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["token", "--org", "X"], {"DIPGW_PORT": "eighty"})
    assert code != 0
    assert "DIPGW_PORT must be a whole number" in capsys.readouterr().err


async def test_send_then_inbox_then_ack_against_a_running_gateway(tmp_path: Path) -> None:
    import json

    from tests.backends import current_database_url
    from tests.processes import free_port, gateway_process, wait_ready

    port = free_port()
    env = {**os.environ, "DIPGW_DATA_DIR": str(tmp_path), "DIPGW_PORT": str(port)}
    document = json.loads(RA1_FILE.read_text())
    with gateway_process(tmp_path, port, current_database_url()):
        await wait_ready(f"http://127.0.0.1:{port}")
        sent = run("send", str(RA1_FILE), env=env)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["status"] == "accepted"

        listed = run("inbox", "--org", "CJIT-NFK", env=env)
        assert document["message_id"] in listed.stdout

        acked = run("inbox", "--org", "CJIT-NFK", "--ack", document["message_id"], env=env)
        assert json.loads(acked.stdout)["status"] == "acknowledged"
        assert "is empty" in run("inbox", "--org", "CJIT-NFK", env=env).stdout

        invalid = EXAMPLES / "court_outcome" / "invalid-several-violations.json"
        refused = run("send", str(invalid), env=env)
        assert refused.returncode == 1
        assert "422" in refused.stderr and "/route" in refused.stderr

        claimed = run("directory", "channel", "CJIT-NFK", "--channel", "pull",
                      "--org", "POL-SFK-IPS", "--role", "ig_lead", env=env)
        assert claimed.returncode == 1 and "403" in claimed.stderr
        chosen = run("directory", "channel", "CJIT-NFK", "--channel", "webhook",
                     "--webhook-url", "https://cjit.example/dip",
                     "--person", "cjit-nfk.ig-lead", env=env)
        assert chosen.returncode == 0, chosen.stderr
        assert json.loads(chosen.stdout)["webhook_url"] == "https://cjit.example/dip"
        shown = run("directory", "channel", "CJIT-NFK", "--org", "CJIT-NFK", env=env)
        assert json.loads(shown.stdout)["channel"] == "webhook"
        wrong = run("directory", "channel", "CJIT-NFK", "--channel", "mesh",
                    "--person", "cjit-nfk.admin", env=env)
        assert wrong.returncode == 1
        assert "422" in wrong.stderr and "mesh_mailbox" in wrong.stderr

        # An administrator grants a colleague IG lead; the grant is what counts.
        granted = run("people", "grant", "cjit-nfk.spoc", "ig_lead", "--reason",
                      "covering leave", "--person", "cjit-nfk.admin", env=env)
        assert granted.returncode == 0, granted.stderr
        me = json.loads(run("whoami", "--person", "cjit-nfk.spoc", env=env).stdout)
        assert me["roles"] == ["ig_lead", "spoc"] and me["organisation"] == "CJIT-NFK"
        listed_people = run("people", "list", "CJIT-NFK", "--person", "cjit-nfk.admin", env=env)
        assert "cjit-nfk.spoc" in listed_people.stdout and "ig_lead" in listed_people.stdout


async def test_operator_bootstrap_makes_the_first_operator_of_a_production_install(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = make_settings(data_dir=tmp_path, environment="production",
                             seed_demo_directory=False, secrets_dir=tmp_path / "secrets")
    env = {**os.environ, "DIPGW_DATA_DIR": str(tmp_path), "DIPGW_ENV": "production",
           "DIPGW_SECRETS_DIR": str(tmp_path / "secrets"), **database_env(settings)}
    # Production makes no key of its own: the installation's set comes first.
    assert run("keys", "init", str(tmp_path / "secrets"), env=env).returncode == 0
    private_file, public_file = tmp_path / "ops.jwk.json", tmp_path / "ops.pub.json"
    made = run("keygen", "--out", str(private_file), env=env)
    assert made.returncode == 0, made.stderr
    public_file.write_text(made.stdout)
    assert "\"d\"" not in made.stdout

    first = run("operator", "bootstrap", "--name", "Sam Okoro", "--email",
                "sam.okoro@dipgw.example", "--public-key", str(public_file), env=env)
    assert first.returncode == 0, first.stderr
    assert "dipgw-ops.sam.okoro" in first.stdout
    again = run("operator", "bootstrap", "--name", "Eve", "--email", "eve@dipgw.example",
                "--public-key", str(public_file), env=env)
    assert again.returncode == 2 and "already holds directory_admin" in again.stderr

    client = await aiohttp_client(create_app(settings))
    operator = Credentials.for_person(
        "DIPGW-OPS", "dipgw-ops.sam.okoro", keys.read_private(private_file),
        audience=settings.audience,
    )
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {operator.token()}"})
    assert me.status == 200
    assert (await me.json())["roles"] == ["directory_admin"]


async def test_oversight_add_lets_an_operator_make_the_first_auditor_of_a_production_install(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """Without an oversight body no one in production can hold auditor (only its people
    may): the host command adds it, audited; the operator then adds a person to it and
    grants auditor through the API, and that person reads the audit log."""
    settings = make_settings(data_dir=tmp_path, environment="production",
                             seed_demo_directory=False, secrets_dir=tmp_path / "secrets")
    env = {**os.environ, "DIPGW_DATA_DIR": str(tmp_path), "DIPGW_ENV": "production",
           "DIPGW_SECRETS_DIR": str(tmp_path / "secrets"), **database_env(settings)}
    assert run("keys", "init", str(tmp_path / "secrets"), env=env).returncode == 0
    operator_key, auditor_key = keys.generate(), keys.generate()
    (tmp_path / "ops.pub.json").write_text(json.dumps(keys.public_jwk(operator_key)))
    assert run("operator", "bootstrap", "--name", "Sam Okoro", "--email",
               "sam.okoro@dipgw.example", "--public-key", str(tmp_path / "ops.pub.json"),
               env=env).returncode == 0

    added = run("oversight", "add", "--code", "DIP-ASSURE", "--name",
                "DIP Audit and Assurance", "--email", "assurance@dip.example", env=env)
    assert added.returncode == 0, added.stderr
    assert "DIP-ASSURE added" in added.stdout
    again = run("oversight", "add", "--code", "DIP-ASSURE", "--name", "Other", env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    clash = run("oversight", "add", "--code", "DIPGW-OPS", "--name", "Ops", env=env)
    assert clash.returncode == 2 and "is a operator organisation" in clash.stderr
    malformed = run("oversight", "add", "--code", "dip assure", "--name", "X", env=env)
    assert malformed.returncode != 0 and "not an organisation code" in malformed.stderr

    client = await aiohttp_client(create_app(settings))
    operator = Credentials.for_person("DIPGW-OPS", "dipgw-ops.sam.okoro", operator_key,
                                      audience=settings.audience)
    as_operator = {"Authorization": f"Bearer {operator.token()}"}
    person = await client.post("/v1/directory/DIP-ASSURE/people", headers=as_operator, json={
        "id": "dip-assure.grace", "name": "Grace Adeyemi", "email": "grace@dip.example",
        "keys": [keys.public_jwk(auditor_key)],
    })
    assert person.status == 201, await person.text()
    as_operator = {"Authorization": f"Bearer {operator.token()}"}
    granted = await client.post("/v1/people/dip-assure.grace/grants", headers=as_operator,
                                json={"role": "auditor", "reason": "first auditor"})
    assert granted.status == 201, await granted.text()

    auditor = Credentials.for_person("DIP-ASSURE", "dip-assure.grace", auditor_key,
                                     audience=settings.audience)
    entries = await client.get("/v1/audit/entries",
                               headers={"Authorization": f"Bearer {auditor.token()}"})
    assert entries.status == 200, await entries.text()
    actions = [entry["action"] for entry in (await entries.json())["entries"]]
    assert "directory.updated" in actions and actions.count("grant.given") == 2
