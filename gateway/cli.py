"""The ``dipgw`` command: run the gateway, sign development tokens, send and receive.

Errors reach the user as one plain sentence and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from gateway import keys, logs
from gateway.client import Credentials, GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError, GatewayError
from gateway.domain.model import Contact, Organisation, OrgKind, Role
from gateway.pipeline.audit import AuditLog
from gateway.services.administration import (
    PERSON_ID,
    bootstrap_operator,
    register_oversight_body,
)
from gateway.services.directory import Directory, dev_key_path, find_person_key

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def _default_url(settings: Settings) -> str:
    return os.environ.get("DIPGW_URL") or f"http://{settings.host}:{settings.port}"


def _dev_credentials(
    settings: Settings, args: argparse.Namespace, org: str | None
) -> Credentials:
    """Sign as a demo person (``--person``) or an organisation's system (``--org``)."""
    if settings.is_production:
        raise ConfigurationError(
            "development tokens are refused in production (DIPGW_ENV=production); "
            "sign tokens with your organisation's own key management instead."
        )
    role = Role(args.role) if args.role else None
    person = getattr(args, "person", None)
    if person:
        if not PERSON_ID.fullmatch(person):
            raise ConfigurationError(f"{person!r} is not a person id such as cjit-sfk.ig-lead")
        found = find_person_key(settings.dev_keys_dir, person)
        if found is None:
            raise ConfigurationError(
                f"no development key for person {person} under {settings.dev_keys_dir}/people. "
                "Start the gateway once (`make run`) so it seeds the demo people; "
                "`dipgw people list ORG` shows who exists."
            )
        person_org, key_file = found
        if getattr(args, "key", None):
            key_file = Path(args.key)
        return Credentials.for_person(
            person_org, person, keys.read_private(key_file), role=role,
            audience=settings.audience, ttl_s=args.ttl,
        )
    if not org:
        raise ConfigurationError(
            "say who acts: --person ID (a person, e.g. cjit-sfk.ig-lead) or --org CODE "
            "(that organisation's system)"
        )
    key_file = Path(args.key) if getattr(args, "key", None) else dev_key_path(
        settings.dev_keys_dir, org
    )
    if not key_file.exists():
        raise ConfigurationError(
            f"no development key for {org} at {key_file}. Start the gateway once "
            "(`make run` or `dipgw serve`) so it seeds the demo directory, or pass --key."
        )
    return Credentials(
        org_code=org,
        private_jwk=keys.read_private(key_file),
        role=role or Role.SYSTEM,
        subject=args.subject,
        audience=settings.audience,
        ttl_s=args.ttl,
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.http import server

    logs.configure(args.log_level)
    app = create_app(settings)
    print(
        f"dipgw {settings.environment} gateway on http://{settings.host}:{settings.port} "
        f"(data in {settings.data_dir}/, transport: "
        f"{'RabbitMQ' if settings.amqp_url else 'in-process'})",
        file=sys.stderr,
    )
    # uvloop: a faster event loop for the same code (see the issue 3 note for figures).
    # The server bounds how long a request head and body may take to arrive.
    server.serve(app, settings, uvloop.new_event_loop())
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    credentials = _dev_credentials(settings, args, args.org)
    if args.ttl > settings.max_token_lifetime_s:
        raise ConfigurationError(
            f"--ttl may be at most {settings.max_token_lifetime_s} seconds "
            "(DIPGW_MAX_TOKEN_LIFETIME)."
        )
    print(credentials.token())
    return 0


def cmd_definitions(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.services.directory import DEMO_ORGANISATIONS
    from gateway.transport.topology import Topology

    topology = Topology(prefix=args.prefix, delivery_limit=args.delivery_limit)
    _print_json(topology.definitions(DEMO_ORGANISATIONS, vhost=args.vhost))
    return 0


def _policy_file(path: str) -> tuple[str, Any]:
    from gateway.pipeline.policy.document import load_text

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"there is no file {path}") from None
    return text, load_text(text)


def cmd_policy_validate(settings: Settings, args: argparse.Namespace) -> int:
    _, policy = _policy_file(args.file)
    print(f"{args.file}: valid — policy {policy.name}, {len(policy.rules)} rules, "
          f"version {policy.version}")
    return 0


def cmd_policy_test(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.pipeline.policy.cases import run_cases
    from gateway.pipeline.policy.document import parse_text

    _, policy = _policy_file(args.file)
    cases_path = Path(args.cases or str(Path(args.file).with_suffix("")) + ".cases.yaml")
    if not cases_path.exists():
        raise ConfigurationError(f"no cases file {cases_path}; pass --cases FILE")
    results = run_cases(policy, parse_text(cases_path.read_text(encoding="utf-8")))
    failed = [r for r in results if not r.passed]
    for result in results if args.verbose else failed:
        print(result.describe())
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_policy_diff(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import SCHEMA_DIR
    from gateway.pipeline.policy.diff import diff, fact_domains, situations
    from gateway.pipeline.validation import SchemaSet

    _, before = _policy_file(args.before)
    _, after = _policy_file(args.after)
    domains = fact_domains(SchemaSet.load(SCHEMA_DIR).documents)
    changes = diff(before, after, situations(domains))
    for change in changes:
        print(change.describe())
    print(f"{len(changes)} situation{'s' if len(changes) != 1 else ''} decided differently "
          f"({before.version} → {after.version})")
    return 0


async def _policy_http(settings: Settings, args: argparse.Namespace) -> int:
    credentials = _dev_credentials(settings, args, args.org)
    async with GatewayClient(args.url, credentials) as client:
        if args.policy_command == "simulate":
            text, _ = _policy_file(args.file)
            body = (await client.request(
                "POST", "/v1/policy/simulate", json_body={"text": text, "limit": args.limit}
            )).body
            for change in body["changes"]:
                print(_describe_change(change))
            print(f"replayed {body['replayed']} recorded decisions: {body['changed']} would "
                  "change under the draft")
        elif args.policy_command == "propose":
            text, _ = _policy_file(args.file)
            _print_json((await client.request(
                "POST", "/v1/policy/versions", json_body={"text": text})).body)
        elif args.policy_command == "approve":
            payload = {"effective_from": args.effective_from} if args.effective_from else {}
            _print_json((await client.request(
                "POST", f"/v1/policy/versions/{args.version}/approve", json_body=payload)).body)
        else:
            _print_json((await client.request("GET", "/v1/policy/versions")).body)
    return 0


def _describe_change(change: dict[str, Any]) -> str:
    situation = ", ".join(f"{k}={v}" for k, v in change["situation"].items() if v is not None)
    return (f"{situation}\n    before: {change['before']['decision']} by "
            f"{change['before']['rule']}\n    after:  {change['after']['decision']} by "
            f"{change['after']['rule']}")


def _text_file(name: str, what: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the {what} file {name}: {exc}") from None


def _witness_quorum_arguments(args: argparse.Namespace) -> tuple[list[str], int]:
    """The witness keys of every ``--witness`` file and the ``--quorum`` (default: all)."""
    witness_keys = [line.strip() for name in args.witness or []
                    for line in _text_file(name, "witness key").splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    if args.quorum is not None and not witness_keys:
        raise ConfigurationError("--quorum needs the witnesses' keys: give --witness KEYFILE")
    return witness_keys, len(witness_keys) if args.quorum is None else args.quorum


def _add_witness_quorum(parser: argparse.ArgumentParser, checked: str) -> None:
    parser.add_argument("--witness", action="append", metavar="KEYFILE",
                        help="file of trusted witness verifier keys, one a line; repeatable")
    parser.add_argument("--quorum", type=int, help=f"witnesses that must have cosigned {checked} "
                        "(default: every --witness key)")


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    import tarfile
    import tempfile

    from gateway.tlog.errors import TlogError
    from gateway.tlog.verify import verify_bundle, verify_inclusion_of, verify_witness_quorum

    witness_keys, quorum = _witness_quorum_arguments(args)
    keys = [
        line.strip() for line in Path(args.public_key).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ] if Path(args.public_key).exists() else None
    if not keys:
        raise ConfigurationError(f"{args.public_key} holds no verifier keys (one a line)")
    bundle = Path(args.bundle)
    if not bundle.exists():
        raise ConfigurationError(f"there is no bundle at {bundle}")
    with tempfile.TemporaryDirectory() as scratch:
        if bundle.is_file():
            with tarfile.open(bundle) as tar:
                tar.extractall(scratch, filter="data")
            inner = [p for p in Path(scratch).iterdir() if p.is_dir()]
            bundle = inner[0] if len(inner) == 1 else Path(scratch)
        entry_range = (args.range_from, args.range_to) if args.range_from is not None else None
        try:
            report = verify_bundle(
                bundle, keys, entry_range=entry_range, origin=args.origin,
                min_size=args.min_size,
            )
            if args.entry is not None:
                proof = verify_inclusion_of(bundle, keys, args.entry)
            witnesses = verify_witness_quorum(bundle, witness_keys, quorum) if witness_keys \
                else ()
        except TlogError as exc:
            print(f"dipgw: audit bundle FAILED verification: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
    print(f"OK: {report.origin} — {len(report.checkpoints)} signed checkpoint(s), newest size "
          f"{report.size}; {report.entries_checked} entries and {report.tiles_checked} tiles "
          "checked, every signature and every root verified")
    if witnesses:
        print(f"newest checkpoint cosigned by {len(witnesses)} trusted witness(es), quorum "
              f"{quorum}: {', '.join(witnesses)}")
    if args.entry is not None:
        print(f"entry {args.entry} is included in the checkpoint of size {proof.tree_size} "
              f"(inclusion proof of {len(proof.proof)} hashes)")
        if proof.entry is not None:
            print(proof.entry.decode("utf-8", errors="replace"))
    return 0


def cmd_witness(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.witness import command

    if args.witness_command == "keygen":
        print(command.keygen(Path(args.out), args.name))
        return 0
    logs.configure(args.log_level)
    command.serve(Path(args.key), args.name, Path(args.logs), Path(args.state),
                  args.host, args.port)
    return 0


def cmd_receipt_verify(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.tlog.errors import TlogError
    from gateway.tlog.receipt import check_receipt_files, parse_receipt
    from gateway.tlog.verify import witness_quorum

    witness_keys, quorum = _witness_quorum_arguments(args)
    newer = Path(args.checkpoint) if args.checkpoint else None
    proof = Path(args.proof) if args.proof else None
    try:
        verified = check_receipt_files(Path(args.receipt), Path(args.public_key), newer, proof)
        witnesses: tuple[str, ...] = ()
        if witness_keys:
            # The checkpoint the entry was last proved in: the newer one when given.
            inclusion = parse_receipt(_text_file(args.receipt, "receipt")).inclusion
            note = (_text_file(args.checkpoint, "checkpoint") if args.checkpoint
                    else inclusion.checkpoint if inclusion is not None else "")
            witnesses = witness_quorum(note, witness_keys, quorum)
    except TlogError as exc:
        print(f"dipgw: receipt FAILED verification: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"OK: entry {verified.index} is included in {verified.checkpoint.origin} at size "
          f"{verified.checkpoint.size}, signed by {', '.join(verified.signers)}"
          + (f"; cosigned by {len(witnesses)} trusted witness(es), quorum {quorum}: "
             f"{', '.join(witnesses)}" if witness_keys else ""))
    print(verified.entry.decode("utf-8", errors="replace"))
    return 0


async def _receipt_fetch(settings: Settings, args: argparse.Namespace) -> int:
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        answer = await client.receipt(args.message_id, args.size)
    text = json.dumps(answer, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


async def _audit_monitor(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.monitor import describe, monitor
    from gateway.tlog.errors import TlogError
    from gateway.tlog.receipt import parse_verifier_keys

    logs.configure(args.log_level)
    try:
        verifiers = parse_verifier_keys(Path(args.public_key).read_text(encoding="utf-8"))
    except (OSError, TlogError) as exc:
        raise ConfigurationError(f"cannot use --public-key {args.public_key}: {exc}") from exc
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        outcome = await monitor(
            client, verifiers, Path(args.state),
            receipts_dir=Path(args.receipts) if args.receipts else None,
            metrics_file=Path(args.metrics_file) if args.metrics_file else None,
            interval_s=args.interval, once=args.once)
    if not outcome.passed:
        print(f"dipgw: audit log ALERT: {describe(outcome.alerts)}", file=sys.stderr)
        return EXIT_PROBLEM
    return 0


def cmd_audit_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.services.checkpoints import stage_rotation

    path = stage_rotation(settings.audit_keys_dir)
    print(f"new signing key staged at {path}; the gateway logs the rotation and signs its "
          "next checkpoint with both keys, then retires the old one.")
    return 0


async def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    params = {k: str(v) for k, v in (("from", args.range_from), ("to", args.range_to))
              if v is not None}
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        Path(args.out).write_bytes(await client.download("/v1/audit/export", params))
    print(f"wrote {args.out}")
    return 0


async def _directory_channel(settings: Settings, args: argparse.Namespace) -> int:
    path = f"/v1/directory/{args.code}/delivery"
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        if args.channel is None:
            body = (await client.request("GET", path)).body
        else:
            choice: dict[str, Any] = {"channel": args.channel,
                                      "email_notices": not args.no_email_notices}
            if args.webhook_url:
                choice["webhook_url"] = args.webhook_url
            if args.mesh_mailbox:
                choice["mesh_mailbox"] = args.mesh_mailbox
            body = (await client.request("PUT", path, json_body=choice)).body
    _print_json(body)
    return 0


async def _directory_import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigurationError(f"there is no file {args.file}") from None
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        body = (await client.request(
            "POST", "/v1/directory/import", json_body={"csv": text, "apply": args.apply}
        )).body
    for org in body["added"]:
        print(f"+ {org['code']:<14} {org['kind']:<10} {org['name']}")
    for change in body["changed"]:
        fields = ", ".join(f"{k}: {v['from']!r} → {v['to']!r}" for k, v in change["fields"].items())
        print(f"~ {change['code']:<14} {fields}")
    for code in body["not_in_file"]:
        print(f"? {code:<14} not in the file (kept)")
    summary = (f"{len(body['added'])} added, {len(body['changed'])} changed, "
               f"{len(body['unchanged'])} unchanged, {len(body['not_in_file'])} not in the file; ")
    if "import_id" in body:
        print(summary + f"proposed as import {body['import_id']}: a second operator person "
              f"applies it with `dipgw directory approve-import {body['import_id']}`.")
    else:
        print(summary + "preview only — run again with --apply to propose it.")
    return 0


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


async def _send(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"there is no file {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    org = args.org or (document.get("from") if isinstance(document, dict) else None)
    if not isinstance(org, str):
        raise ConfigurationError("the document has no 'from'; say who sends it with --org")
    async with GatewayClient(
        args.url, _dev_credentials(settings, args, org), sign_messages=args.sign
    ) as client:
        answer = await (client.decide(document) if args.dry_run else client.send(document))
    _print_json(answer.body)
    return 0


def _read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"there is no {what} at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is not a JSON {what}: {exc}") from None


def _received_items(found: Any) -> list[Mapping[str, Any]]:
    """The messages a file holds: one inbox item, a list of them, or a whole
    ``GET /v1/inbox`` answer (``dipgw inbox --json`` prints the list)."""
    if isinstance(found, dict) and isinstance(found.get("messages"), list):
        found = found["messages"]
    items = found if isinstance(found, list) else [found]
    if not items or not all(isinstance(i, dict) and isinstance(i.get("envelope"), dict)
                            for i in items):
        raise ConfigurationError(
            "the file holds no received message: expected an inbox item (with 'envelope' "
            "and 'sender_signature'), a list of them, or a GET /v1/inbox answer")
    return items


def cmd_verify_message(settings: Settings, args: argparse.Namespace) -> int:
    """Check received messages against their senders' signatures, offline."""
    from gateway.sdjwt.disclosure import SdJwt, SdJwtError
    from gateway.sdjwt.envelope import check_received

    found = _read_json_file(Path(args.public_key), "public key (JWK or JWKS)")
    jwks = found.get("keys") if isinstance(found, dict) and "keys" in found else [found]
    if not isinstance(jwks, list) or not all(isinstance(k, dict) and k.get("kid")
                                             for k in jwks):
        raise ConfigurationError(f"{args.public_key} holds no JWK with a 'kid'")
    by_kid = {str(k["kid"]): k for k in jwks}
    failures = 0
    for item in _received_items(_read_json_file(Path(args.file), "received message")):
        envelope = item["envelope"]
        name = f"message {envelope.get('message_id', '?')} from {envelope.get('from', '?')}"
        signature = item.get("sender_signature")
        try:
            if not isinstance(signature, str):
                raise SdJwtError("it carries no sender signature (sent unsigned)")
            kid = SdJwt.parse(signature).header().get("kid")
            if not isinstance(kid, str) or kid not in by_kid:
                raise SdJwtError(f"it is signed with key {kid!r}, which {args.public_key} "
                                 "does not hold")
            checked = check_received(envelope, signature, by_kid[kid])
        except SdJwtError as error:
            failures += 1
            print(f"NOT VERIFIED: {name}: {error}")
            continue
        notes = []
        if checked.withheld:
            notes.append(f"{checked.withheld} signed part(s) withheld from you by the policy")
        if checked.addressed_by_gateway:
            notes.append("'to' set by the gateway (the sender left it out)")
        print(f"verified: {name}: every field is what the sender signed"
              + (f"; {'; '.join(notes)}" if notes else ""))
    return EXIT_PROBLEM if failures else 0


async def _inbox(settings: Settings, args: argparse.Namespace) -> int:
    credentials = _dev_credentials(settings, args, args.org)
    async with GatewayClient(args.url, credentials) as client:
        for message_id in args.ack:
            _print_json(await client.acknowledge(message_id))
        if args.ack:
            return 0
        items = await client.inbox(args.limit)
        if args.ack_all:
            for item in items:
                _print_json(await client.acknowledge(item["message_id"]))
            return 0
    if args.json:
        _print_json(items)
    elif not items:
        print(f"The inbox of {credentials.org_code} is empty.")
    else:
        print(f"{'delivered at':<28} {'type':<20} {'from':<12} message id")
        for item in items:
            print(
                f"{item['delivered_at']:<28} {item['type']:<20} {item['from']:<12} "
                f"{item['message_id']}"
            )
        who = f"--person {args.person}" if args.person else f"--org {credentials.org_code}"
        print(f"\n{len(items)} waiting. Acknowledge with: dipgw inbox {who} --ack ID")
    return 0


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        _print_json(await client.status(args.message_id))
    return 0


async def _whoami(settings: Settings, args: argparse.Namespace) -> int:
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        _print_json((await client.request("GET", "/v1/me")).body)
    return 0


def _public_key_file(path: str) -> dict[str, Any]:
    try:
        jwk = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"there is no file {path}") from None
    except json.JSONDecodeError:
        raise ConfigurationError(f"{path} does not hold a JSON Web Key") from None
    if not isinstance(jwk, dict):
        raise ConfigurationError(f"{path} does not hold a JSON Web Key")
    # Only the public part ever leaves this machine.
    return keys.public_jwk(jwk)


async def _people(settings: Settings, args: argparse.Namespace) -> int:
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        action = args.people_command
        if action == "list":
            body = (await client.request("GET", f"/v1/directory/{args.code}/people")).body
            for person in body["people"]:
                roles = ", ".join(person["roles"]) or "no roles"
                print(f"{person['id']:<28} {person['name']:<22} {roles}")
            return 0
        if action == "show":
            body = (await client.request("GET", f"/v1/people/{args.person_id}")).body
        elif action == "add":
            record: dict[str, Any] = {"name": args.name, "email": args.email}
            if args.id:
                record["id"] = args.id
            if args.public_key:
                record["keys"] = [_public_key_file(args.public_key)]
            body = (await client.request(
                "POST", f"/v1/directory/{args.code}/people", json_body=record)).body
        elif action == "add-key":
            body = (await client.request(
                "POST", f"/v1/people/{args.person_id}/keys",
                json_body=_public_key_file(args.public_key))).body
        elif action == "grant":
            body = (await client.request(
                "POST", f"/v1/people/{args.person_id}/grants",
                json_body={"role": args.grant_role, "reason": args.reason})).body
        else:
            body = (await client.request(
                "POST", f"/v1/grants/{args.grant_id}/revoke",
                json_body={"reason": args.reason})).body
    _print_json(body)
    return 0


@asynccontextmanager
async def _this_installation(settings: Settings) -> AsyncIterator[tuple[Directory, AuditLog]]:
    """The directory and the audit log straight on this installation's database, for the
    commands that set it up on the gateway's own host (access to the host, its database
    and its pseudonym key is the root of trust there)."""
    from gateway.pipeline.audit import Pseudonymiser
    from gateway.services.checkpoints import pseudonym_key
    from gateway.storage.audit_log import AuditLogStore
    from gateway.storage.directory import DirectoryStore
    from gateway.storage.engine import open_database

    db = open_database(settings.database_url, settings.sqlite_path)
    await db.open()
    try:
        directory = Directory(DirectoryStore(db))
        await directory.refresh()
        yield directory, AuditLogStore(db, Pseudonymiser(
            pseudonym_key(settings.audit_keys_dir, create=not settings.is_production)
        ))
    finally:
        await db.close()


async def _operator_bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    """Write the first operator person straight into this installation's database."""
    record: dict[str, Any] = {"name": args.name, "email": args.email,
                              "keys": [_public_key_file(args.public_key)]}
    if args.id:
        record["id"] = args.id
    operator_org = Organisation(
        args.org, OrgKind.OPERATOR, args.org_name, "England", Contact(args.org_name)
    )
    async with _this_installation(settings) as (directory, audit):
        person = await bootstrap_operator(
            directory, audit, operator_org, record, datetime.now(UTC)
        )
    print(f"{person.id} of {person.org_code} now holds directory_admin (audited). Restart "
          "the gateway so it reads the directory afresh; then grant the rest through the API.")
    return 0


async def _oversight_add(settings: Settings, args: argparse.Namespace) -> int:
    """Write the programme's oversight body straight into this installation's database."""
    oversight = Organisation(
        args.code, OrgKind.OVERSIGHT, args.name, args.area,
        Contact(args.contact or args.name, email=args.email),
    )
    async with _this_installation(settings) as (directory, audit):
        added = await register_oversight_body(directory, audit, oversight, datetime.now(UTC))
    if not added:
        print(f"{args.code} is already the directory's oversight body; nothing changed.")
        return 0
    print(f"{args.code} added (audited). An operator now adds its people and grants them "
          f"auditor: dipgw-api POST /v1/directory/{args.code}/people, then POST "
          "/v1/people/PERSON_ID/grants with role auditor (or the console's people pages).")
    return 0


def cmd_keygen(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.out)
    if path.exists():
        raise ConfigurationError(f"{path} exists; choose another file")
    private = keys.generate(args.algorithm)
    keys.write_private(path, private)
    print(f"private key written to {path} (0600); register this public key:", file=sys.stderr)
    _print_json(keys.public_jwk(private))
    return 0


def cmd_keys_init(settings: Settings, args: argparse.Namespace) -> int:
    """Make an installation's key set once; every gateway process then reads that copy."""
    from gateway.keyfiles import DELIVERY_KEY
    from gateway.services.checkpoints import (
        CURRENT,
        PSEUDONYM,
        AuditKeys,
        new_key_file,
        new_pseudonym_file,
    )

    folder = Path(args.dir)
    existing = [folder / name for name in (CURRENT, PSEUDONYM, DELIVERY_KEY)
                if (folder / name).exists()]
    if existing:
        raise ConfigurationError(
            f"{', '.join(map(str, existing))} already exist: keys init never overwrites a "
            "key (the audit log and webhook receivers depend on it); choose an empty "
            "directory, or stage a new audit key with `dipgw audit rotate-key`"
        )
    new_key_file(folder / CURRENT)
    new_pseudonym_file(folder / PSEUDONYM)
    delivery = keys.generate("EdDSA")
    keys.write_private(folder / DELIVERY_KEY, delivery)
    signer = AuditKeys(folder, settings.audit_origin, create=False).current
    print(f"wrote {CURRENT}, {PSEUDONYM} and {DELIVERY_KEY} (0600) to {folder}. Give every "
          "gateway process this same directory as DIPGW_SECRETS_DIR, and keep a backup.",
          file=sys.stderr)
    print(f"audit verifier key: {signer.verifier_key()}")
    print(f"webhook signing key id: {delivery['kid']}")
    return 0


async def _directory_approve_import(settings: Settings, args: argparse.Namespace) -> int:
    async with GatewayClient(args.url, _dev_credentials(settings, args, args.org)) as client:
        body = (await client.request(
            "POST", f"/v1/directory/imports/{args.import_id}/approve", json_body={})).body
    print(f"import {body['import_id']} applied: {len(body['added'])} added, "
          f"{len(body['changed'])} changed.")
    return 0


def _run_async(
    fn: Callable[[Settings, argparse.Namespace], Any],
) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        result: int = asyncio.run(fn(settings, args))
        return result

    return run


def _add_identity(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--org",
        help="act as this organisation's system, e.g. CJIT-SFK (see GET /v1/directory)",
    )
    who.add_argument(
        "--person",
        help="act as this demo person, e.g. cjit-sfk.ig-lead (`dipgw people list ORG`); "
        "their roles are the ones the gateway granted them",
    )
    parser.add_argument(
        "--role", choices=[r.value for r in Role],
        help="narrow the token to one role you hold (default: every role you hold); "
        "a role you were not granted is refused",
    )
    parser.add_argument("--subject", default="system",
                        help="a system's name in its token's 'sub' (a label, it grants nothing)")
    parser.add_argument(
        "--ttl", type=int, default=300, help="token lifetime in seconds (default: 300)"
    )
    parser.add_argument(
        "--key", help="private JWK file to sign with (default: the demo key in DATA_DIR/dev-keys)"
    )


def _add_url(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--url", default=_default_url(settings),
        help="gateway base URL (default: $DIPGW_URL or http://$DIPGW_HOST:$DIPGW_PORT)",
    )


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dipgw",
        description=(
            "dipgw: secure messaging gateway for the Drug Interventions Programme. "
            "Configuration comes from DIPGW_* environment variables (see README)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the gateway",
        description="Run the gateway. With no configuration: SQLite under ./var, the "
        "in-process transport and a seeded demo directory with development keys.",
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    serve.set_defaults(handler=cmd_serve)

    token = sub.add_parser(
        "token", help="print a signed single-use JWT for a demo system or demo person",
        description="Print a single-use bearer token signed with the development key of a "
        "demo organisation's system (--org) or of a demo person (--person). The gateway, not "
        "the token, decides what it may do. Refused when DIPGW_ENV=production.",
        epilog='example: curl -H "Authorization: Bearer $(dipgw token --person cjit-sfk.spoc)" '
        "http://127.0.0.1:8080/v1/inbox",
    )
    _add_identity(token)
    token.set_defaults(handler=cmd_token)

    send = sub.add_parser(
        "send", help="send a message document and print the gateway's answer",
        description="Send one message (a JSON envelope) as the organisation in its 'from'.",
        epilog="example: dipgw send schemas/examples/ra1_notice/valid-ipswich-arrest.json",
    )
    send.add_argument("file", help="JSON file holding the envelope")
    send.add_argument(
        "--dry-run", action="store_true",
        help="ask for the decision only (POST /v1/policy/decide); nothing is sent",
    )
    send.add_argument(
        "--sign", action="store_true",
        help="send it as an SD-JWT signed with the sender's key, so each recipient can "
        "check it with `dipgw verify-message` (README, 'Sender-signed messages')",
    )
    _add_identity(send)
    _add_url(send, settings)
    send.set_defaults(handler=_run_async(_send))

    verify_message = sub.add_parser(
        "verify-message", help="check received messages against their senders' signatures",
        description="Check, offline and without trusting the gateway, that every field of a "
        "received message is what its sender signed, though the sharing policy withheld "
        "others. Exit 0 only if every message in FILE verifies.",
        epilog="example: dipgw inbox --org CJIT-SFK --json > inbox.json; curl -H "
        '"Authorization: Bearer $(dipgw token --org CJIT-SFK)" '
        "http://127.0.0.1:8080/v1/directory/POL-SFK-IPS/keys > police.jwks; "
        "dipgw verify-message inbox.json --public-key police.jwks",
    )
    verify_message.add_argument(
        "file", help="an inbox item as GET /v1/inbox lists it, a list of them, or the answer")
    verify_message.add_argument(
        "--public-key", required=True,
        help="the sender's public key: a JWK, or a JWKS as GET /v1/directory/CODE/keys "
        "answers (keep a copy you trust)")
    verify_message.set_defaults(handler=cmd_verify_message)

    inbox = sub.add_parser(
        "inbox", help="list or acknowledge an organisation's inbox",
        description="List the messages waiting for an organisation, oldest first, "
        "or acknowledge them.",
        epilog="example: dipgw inbox --org CJIT-SFK --ack 5f0c…",
    )
    _add_identity(inbox)
    _add_url(inbox, settings)
    inbox.add_argument("--limit", type=int, default=50, help="how many to list (1-500)")
    inbox.add_argument(
        "--ack", action="append", default=[], metavar="MESSAGE_ID",
        help="acknowledge this message (repeatable)",
    )
    inbox.add_argument("--ack-all", action="store_true", help="acknowledge everything listed")
    inbox.add_argument("--json", action="store_true", help="print the full items as JSON")
    inbox.set_defaults(handler=_run_async(_inbox))

    status = sub.add_parser(
        "status", help="show a message's status and history",
        description="Show the status and history of a message you sent or received.",
    )
    status.add_argument("message_id")
    _add_identity(status)
    _add_url(status, settings)
    status.set_defaults(handler=_run_async(_status))
    policy = sub.add_parser(
        "policy", help="check, test, compare and approve sharing policies",
        description="Work on sharing policies (YAML in policies/). validate, test and diff "
        "run offline on files; simulate, propose, approve and versions talk to a running "
        "gateway as a person holding ig_lead (--person cjit-sfk.ig-lead).",
    )
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    p_validate = policy_sub.add_parser(
        "validate", help="check a policy file", description="Check a policy file against "
        "its schema and vocabulary; every problem is listed with where it is.")
    p_validate.add_argument("file")
    p_validate.set_defaults(handler=cmd_policy_validate)
    p_test = policy_sub.add_parser(
        "test", help="run a policy's own cases",
        description="Run the cases kept beside a policy (FILE.cases.yaml by default).",
        epilog="example: dipgw policy test policies/dip-default.yaml")
    p_test.add_argument("file")
    p_test.add_argument("--cases", help="cases file (default: the policy's .cases.yaml)")
    p_test.add_argument("--verbose", "-v", action="store_true", help="list passing cases too")
    p_test.set_defaults(handler=cmd_policy_test)
    p_diff = policy_sub.add_parser(
        "diff", help="which decisions change between two policies",
        description="Decide every combination of type, route, sender kind, recipient kind, "
        "consent state and message facts under both policies and print each difference.",
        epilog="example: dipgw policy diff policies/dip-default.yaml draft.yaml")
    p_diff.add_argument("before")
    p_diff.add_argument("after")
    p_diff.set_defaults(handler=cmd_policy_diff)
    p_sim = policy_sub.add_parser(
        "simulate", help="replay recorded traffic through a draft",
        description="Ask a running gateway to replay its recorded decisions through a draft "
        "policy and report what would have been decided differently.")
    p_sim.add_argument("file")
    p_sim.add_argument("--limit", type=int, default=10_000, help="newest decisions to replay")
    p_propose = policy_sub.add_parser(
        "propose", help="propose a policy version (needs a second IG lead's approval)")
    p_propose.add_argument("file")
    p_approve = policy_sub.add_parser(
        "approve", help="approve another IG lead's proposed version")
    p_approve.add_argument("version")
    p_approve.add_argument("--effective-from", help="RFC 3339 time it takes effect (default: now)")
    p_versions = policy_sub.add_parser("versions", help="list policy versions")
    for online in (p_sim, p_propose, p_approve, p_versions):
        _add_identity(online)
        _add_url(online, settings)
        online.set_defaults(handler=_run_async(_policy_http))

    audit = sub.add_parser(
        "audit", help="verify, export and manage the signed audit log",
        description="The audit log is an RFC 6962 Merkle tree with C2SP signed checkpoints.",
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    a_verify = audit_sub.add_parser(
        "verify", help="verify an exported bundle offline",
        description="Verify an exported audit bundle (directory or .tar.gz) with no gateway "
        "running: every checkpoint signature against the given keys only, each checkpoint "
        "consistent with the one before, the entries reproducing every signed root, no gap. "
        "Exits 0 only when every check passes.",
        epilog="example: dipgw audit verify dipgw-audit-0-120.tar.gz --public-key keys.txt "
        "--witness witnesses.txt --quorum 2")
    a_verify.add_argument("bundle")
    a_verify.add_argument("--public-key", required=True,
                          help="file of verifier keys, one a line (GET /v1/audit/keys)")
    a_verify.add_argument("--entry", type=int, help="also prove this entry's inclusion")
    a_verify.add_argument("--from", dest="range_from", type=int,
                          help="the bundle holds entries from this index (range export)")
    a_verify.add_argument("--to", dest="range_to", type=int, help="…up to this index")
    a_verify.add_argument("--origin", help="the log's origin line you expect")
    a_verify.add_argument("--min-size", type=int, default=0,
                          help="a size you know the log reached (detects a cut-back log)")
    _add_witness_quorum(a_verify, "the newest checkpoint")
    a_verify.set_defaults(handler=cmd_audit_verify)
    a_rotate = audit_sub.add_parser(
        "rotate-key", help="stage a new checkpoint signing key",
        description="Create the next signing key beside the current one (DIPGW_AUDIT_KEYS_DIR "
        "or DATA_DIR/audit-keys); the running gateway announces it in the log and signs its "
        "next checkpoint with both keys.")
    a_rotate.set_defaults(handler=cmd_audit_rotate)
    a_export = audit_sub.add_parser(
        "export", help="download a bundle from a running gateway (auditor)")
    a_export.add_argument("--out", required=True, help="file to write (.tar.gz)")
    a_export.add_argument("--from", dest="range_from", type=int)
    a_export.add_argument("--to", dest="range_to", type=int)
    _add_identity(a_export)
    _add_url(a_export, settings)
    a_export.set_defaults(handler=_run_async(_audit_export))

    a_monitor = audit_sub.add_parser(
        "monitor", help="follow the signed checkpoints and check held receipts",
        description="Poll GET /v1/audit/checkpoint; check each checkpoint is signed by a "
        "trusted key and consistent with the last one seen (RFC 9162 consistency proof), "
        "and that every receipt in --receipts is still included. On a fork or a missing "
        "entry: an audit_monitor_alert log line, a metric and a non-zero exit.",
        epilog="example: dipgw audit monitor --org CJIT-SFK --public-key keys.txt "
        "--state monitor.state --receipts receipts/ --once")
    a_monitor.add_argument("--public-key", required=True,
                           help="file of trusted verifier keys, one a line (GET /v1/audit/keys)")
    a_monitor.add_argument("--state", required=True,
                           help="file keeping the last checkpoint that passed")
    a_monitor.add_argument("--receipts", help="directory of receipt JSON files to check")
    a_monitor.add_argument("--metrics-file",
                           help="Prometheus textfile-collector file to write")
    a_monitor.add_argument("--interval", type=float, default=60.0,
                           help="seconds between polls (default: 60)")
    a_monitor.add_argument("--once", action="store_true", help="check once and exit")
    a_monitor.add_argument("--log-level", default="INFO")
    _add_identity(a_monitor)
    _add_url(a_monitor, settings)
    a_monitor.set_defaults(handler=_run_async(_audit_monitor))

    receipt_cmd = sub.add_parser(
        "receipt", help="fetch and verify audit receipts of messages",
        description="A receipt (dipgw-receipt/1) proves an audit entry about a message is "
        "in a checkpoint the gateway signed.")
    receipt_sub = receipt_cmd.add_subparsers(dest="receipt_command", required=True,
                                             metavar="ACTION")
    r_verify = receipt_sub.add_parser(
        "verify", help="verify a receipt offline",
        description="Check the entry's hash, the inclusion proof and the checkpoint's "
        "signature with no gateway running; with --checkpoint and --proof, also that the "
        "receipt's checkpoint is a prefix of a newer one. Exits 0 only if all verify.",
        epilog="example: dipgw receipt verify receipt.json --public-key keys.txt")
    r_verify.add_argument("receipt", help="the receipt JSON file")
    r_verify.add_argument("--public-key", required=True,
                          help="file of trusted verifier keys, one a line (GET /v1/audit/keys)")
    r_verify.add_argument("--checkpoint", help="a newer signed checkpoint file")
    r_verify.add_argument("--proof", help="the consistency proof from the receipt's "
                          "checkpoint to --checkpoint (GET /v1/audit/proof/consistency "
                          "JSON, or one base64 hash a line)")
    _add_witness_quorum(r_verify, "the checkpoint the entry is proved in")
    r_verify.set_defaults(handler=cmd_receipt_verify)
    r_fetch = receipt_sub.add_parser(
        "fetch", help="fetch a message's receipt (its sender or a recipient)")
    r_fetch.add_argument("message_id")
    r_fetch.add_argument("--size", type=int, help="prove in the checkpoint of this size")
    r_fetch.add_argument("--out", help="file to write (default: standard output)")
    _add_identity(r_fetch)
    _add_url(r_fetch, settings)
    r_fetch.set_defaults(handler=_run_async(_receipt_fetch))

    directory_cmd = sub.add_parser(
        "directory", help="import the CJIT SPOC list (CSV); choose delivery channels")
    directory_sub = directory_cmd.add_subparsers(dest="directory_command", required=True,
                                                 metavar="ACTION")
    d_import = directory_sub.add_parser(
        "import", help="preview (default) or apply a SPOC list CSV",
        description="Compare a SPOC list CSV (columns code, organisation, kind, area, "
        "spoc_name, phone, email, secure_email, areas_served) with the directory and print "
        "what would change; --apply proposes the change, which a second operator person "
        "applies (`dipgw directory approve-import`). Operator only.",
        epilog="example: dipgw directory import spoc-list.csv --apply "
        "--person dipgw-ops.operator")
    d_import.add_argument("file")
    d_import.add_argument("--apply", action="store_true", help="apply, not just preview")
    _add_identity(d_import)
    _add_url(d_import, settings)
    d_import.set_defaults(handler=_run_async(_directory_import))

    d_channel = directory_sub.add_parser(
        "channel", help="show or choose how messages reach an organisation",
        description="Without --channel, show the organisation's delivery channel. With it, "
        "choose one (the organisation's IG lead or administrator, or the operator; "
        "audited): pull (its systems read the inbox API), amqp (it "
        "consumes its own RabbitMQ queue), "
        "webhook (signed HTTPS POST to --webhook-url, retried until a 2xx) or mesh (NHS "
        "MESH mailbox --mesh-mailbox). Alert notices go by e-mail to the SPOC's secure "
        "address unless --no-email-notices.",
        epilog="example: dipgw directory channel CJIT-NFK --channel webhook "
        "--webhook-url https://cjit.example/dip --person cjit-nfk.ig-lead")
    d_channel.add_argument("code", help="the organisation, e.g. CJIT-NFK")
    d_channel.add_argument("--channel", choices=["pull", "amqp", "webhook", "mesh"])
    d_channel.add_argument("--webhook-url", help="HTTPS endpoint (webhook channel)")
    d_channel.add_argument("--mesh-mailbox", help="MESH mailbox id (mesh channel)")
    d_channel.add_argument("--no-email-notices", action="store_true",
                           help="do not e-mail the SPOC when an alert arrives")
    _add_identity(d_channel)
    _add_url(d_channel, settings)
    d_channel.set_defaults(handler=_run_async(_directory_channel))

    d_approve = directory_sub.add_parser(
        "approve-import", help="apply an import another operator person proposed",
        description="Apply a proposed SPOC-list import (operator; not its proposer). It is "
        "refused if the directory changed since the proposal.",
        epilog="example: dipgw directory approve-import 0b6f… --person dipgw-ops.operator2")
    d_approve.add_argument("import_id")
    _add_identity(d_approve)
    _add_url(d_approve, settings)
    d_approve.set_defaults(handler=_run_async(_directory_approve_import))

    whoami = sub.add_parser(
        "whoami", help="show who the gateway takes you for, and your roles",
        description="Ask the gateway who the token's signer is and which roles it holds.",
        epilog="example: dipgw whoami --person cjit-sfk.admin")
    _add_identity(whoami)
    _add_url(whoami, settings)
    whoami.set_defaults(handler=_run_async(_whoami))

    people = sub.add_parser(
        "people", help="an organisation's people, their keys and the roles granted to them",
        description="People act with their own keys and hold only the roles the gateway "
        "granted them. An organisation's administrator adds its people and grants spoc and "
        "ig_lead; the operator grants the first administrator, auditors and operators.",
        epilog="example: dipgw people grant cjit-sfk.spoc ig_lead --reason 'covering the IG "
        "lead role' --person cjit-sfk.admin")
    people_sub = people.add_subparsers(dest="people_command", required=True, metavar="ACTION")
    pe_list = people_sub.add_parser("list", help="list an organisation's people and roles")
    pe_list.add_argument("code", help="the organisation, e.g. CJIT-SFK")
    pe_show = people_sub.add_parser("show", help="show a person, their keys and grants")
    pe_show.add_argument("person_id")
    pe_add = people_sub.add_parser("add", help="add a person to an organisation")
    pe_add.add_argument("code", help="their organisation, e.g. CJIT-SFK")
    pe_add.add_argument("--name", required=True)
    pe_add.add_argument("--email", required=True, help="work e-mail")
    pe_add.add_argument("--id", help="person id (default: ORG.local-part-of-email)")
    pe_add.add_argument("--public-key", help="JWK file of a key they sign with (`dipgw keygen`)")
    pe_key = people_sub.add_parser("add-key", help="register another public key for a person")
    pe_key.add_argument("person_id")
    pe_key.add_argument("--public-key", required=True, help="JWK file (`dipgw keygen`)")
    pe_grant = people_sub.add_parser("grant", help="grant a person a role (audited)")
    pe_grant.add_argument("person_id")
    pe_grant.add_argument("grant_role", metavar="ROLE",
                          choices=[r.value for r in Role if r is not Role.SYSTEM])
    pe_grant.add_argument("--reason", required=True, help="why (kept in the audit log)")
    pe_revoke = people_sub.add_parser("revoke", help="revoke a grant (audited)")
    pe_revoke.add_argument("grant_id")
    pe_revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")
    for action in (pe_list, pe_show, pe_add, pe_key, pe_grant, pe_revoke):
        _add_identity(action)
        _add_url(action, settings)
        action.set_defaults(handler=_run_async(_people))

    operator = sub.add_parser(
        "operator", help="set up the gateway's operator (on the gateway's own host)")
    operator_sub = operator.add_subparsers(dest="operator_command", required=True,
                                           metavar="ACTION")
    bootstrap = operator_sub.add_parser(
        "bootstrap", help="make the first operator person of a new installation",
        description="Add the first operator person, holding directory_admin, directly to "
        "this installation's database (DIPGW_DATA_DIR). Works in production too: access "
        "to the gateway's host is the root of trust. Refused once anyone holds "
        "directory_admin.",
        epilog="example: dipgw keygen --out ops.jwk.json > ops.pub.json && dipgw operator "
        "bootstrap --name 'Sam Okoro' --email sam@dipgw.example --public-key ops.pub.json")
    bootstrap.add_argument("--name", required=True)
    bootstrap.add_argument("--email", required=True, help="work e-mail")
    bootstrap.add_argument("--public-key", required=True, help="their public JWK file")
    bootstrap.add_argument("--id", help="person id (default: ORG.local-part-of-email)")
    bootstrap.add_argument("--org", default="DIPGW-OPS", help="operator organisation code")
    bootstrap.add_argument("--org-name", default="dipgw national service team")
    bootstrap.set_defaults(handler=_run_async(_operator_bootstrap))

    oversight = sub.add_parser(
        "oversight", help="add the programme's oversight body (on the gateway's own host)")
    oversight_sub = oversight.add_subparsers(dest="oversight_command", required=True,
                                             metavar="ACTION")
    oversight_add = oversight_sub.add_parser(
        "add", help="add the oversight body, whose people can be granted auditor",
        description="Add the programme's oversight body to this installation's directory "
        "(its database, as `operator bootstrap` writes it), audited. Only its people can "
        "hold auditor; an operator adds them and grants the role. Works in production. "
        "Does nothing if the body is there already; refused for a code another kind holds.",
        epilog="example: dipgw oversight add --code DIP-ASSURE --name 'DIP Audit and "
        "Assurance' --email assurance@dip-oversight.example")
    oversight_add.add_argument("--code", required=True, help="directory code, e.g. DIP-ASSURE")
    oversight_add.add_argument("--name", required=True)
    oversight_add.add_argument("--area", default="England")
    oversight_add.add_argument("--contact", help="contact name (default: --name)")
    oversight_add.add_argument("--email", help="contact e-mail")
    oversight_add.set_defaults(handler=_run_async(_oversight_add))

    keygen = sub.add_parser(
        "keygen", help="make a signing key pair and print its public JWK",
        description="Write a new private key (0600) and print the public key to register "
        "(`dipgw people add … --public-key` or `people add-key`).")
    keygen.add_argument("--out", required=True, help="file for the private key")
    keygen.add_argument("--algorithm", choices=["EdDSA", "ES256"], default="EdDSA")
    keygen.set_defaults(handler=cmd_keygen)

    witness = sub.add_parser(
        "witness", help="run a C2SP tlog-witness that cosigns the audit log's checkpoints",
        description="A witness cosigns a log's checkpoint only if it is consistent with the "
        "last one it cosigned (C2SP tlog-witness), so the log cannot show two histories.")
    witness_sub = witness.add_subparsers(dest="witness_command", required=True,
                                         metavar="ACTION")
    w_keygen = witness_sub.add_parser(
        "keygen", help="make a witness key (0600) and print its verifier key",
        description="Write a new Ed25519 seed to FILE (0600, never overwriting) and print "
        "the witness's verifier key for the gateway operator's DIPGW_WITNESSES file.")
    w_keygen.add_argument("--out", required=True, help="file for the witness key")
    w_keygen.add_argument("--name", required=True, help="the witness's name, e.g. "
                          "witness.example.org/w1 (one key, one name)")
    w_keygen.set_defaults(handler=cmd_witness)
    w_serve = witness_sub.add_parser(
        "serve", help="serve POST /add-checkpoint",
        description="Serve C2SP tlog-witness add-checkpoint for the logs in --logs, keeping "
        "the latest cosigned checkpoint of each in the SQLite file --state.")
    w_serve.add_argument("--key", required=True, help="the witness key file (keygen --out)")
    w_serve.add_argument("--name", required=True, help="the name the key was made for")
    w_serve.add_argument("--logs", required=True,
                         help="file of log verifier keys, one a line (GET /v1/audit/keys)")
    w_serve.add_argument("--state", required=True, help="SQLite file of the witness's state")
    w_serve.add_argument("--host", default="127.0.0.1")
    w_serve.add_argument("--port", type=int, default=7380)
    w_serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    w_serve.set_defaults(handler=cmd_witness)

    keys_cmd = sub.add_parser(
        "keys", help="make the gateway's own keys, once per installation")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    k_init = keys_sub.add_parser(
        "init", help="write a new key set into DIR (never overwriting a key)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the gateway's own keys into DIR, each 0600 (DIR made 0700):\n\n"
        "  current.key    the audit log's checkpoint signing key (Ed25519 seed)\n"
        "  pseudonym.key  the audit log's pseudonym key (HMAC-SHA-256, 32 bytes)\n"
        "  delivery.jwk   the webhook signing key (private Ed25519 JWK)\n\n"
        "Run it once per installation, not once per process: every gateway process\n"
        "must get the same copy of DIR, named in DIPGW_SECRETS_DIR (for instance a\n"
        "Kubernetes Secret mounted read-only with defaultMode 0400 or 0440), or their\n"
        "checkpoint signatures, pseudonyms and webhook signatures differ. In production\n"
        "the gateway never makes these keys itself. Refused if any of the files exists.\n"
        "Prints the audit verifier key (for auditors) and the webhook key id.",
        epilog="example: dipgw keys init /secure/dipgw-keys && kubectl create secret "
        "generic dipgw-keys --from-file=/secure/dipgw-keys")
    k_init.add_argument("dir", help="directory to write the keys into")
    k_init.set_defaults(handler=cmd_keys_init)

    definitions = sub.add_parser(
        "rabbitmq-definitions",
        help="print the RabbitMQ topology as importable definitions (JSON)",
        description="Print the exchanges, per-organisation quorum queues, dead-letter "
        "queues, bindings, users and permissions for the demo directory, in the form "
        "`rabbitmqctl import_definitions FILE` takes. Users have no password: set one "
        "with `rabbitmqctl change_password USER PASSWORD`.",
        epilog="example: dipgw rabbitmq-definitions > deploy/rabbitmq/definitions.json",
    )
    definitions.add_argument("--vhost", default="/", help="virtual host (default: /)")
    definitions.add_argument("--prefix", default="dipgw", help="name prefix (default: dipgw)")
    definitions.add_argument(
        "--delivery-limit", type=int, default=5,
        help="failed deliveries before a message is dead-lettered (default: 5)",
    )
    definitions.set_defaults(handler=cmd_definitions)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    try:
        settings = Settings.from_env(env)
        args = build_parser(settings).parse_args(argv)
        code: int = args.handler(settings, args)
        return code
    except GatewayProblem as problem:
        print(_problem_text(problem), file=sys.stderr)
        return EXIT_PROBLEM
    except GatewayError as error:
        print(f"dipgw: {error.diagnostics()}", file=sys.stderr)
        return EXIT_USAGE
    except aiohttp.ClientConnectionError as exc:
        print(
            f"dipgw: cannot reach the gateway ({exc}). Is it running (`make run`)? "
            "Set --url or DIPGW_URL if it is elsewhere.",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`dipgw … | head`): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEM


def _problem_text(problem: GatewayProblem) -> str:
    body = problem.problem
    lines = [f"dipgw: {problem.status} {body.get('title', '')}: {body.get('detail', '')}"]
    lines += [f"  {e.get('pointer') or '/'}: {e.get('message')}" for e in problem.violations]
    if "decision" in body:
        lines.append("  decision: " + json.dumps(body["decision"], ensure_ascii=False))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
