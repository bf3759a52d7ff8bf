"""Service commands: `gavel serve`, `gavel tenants create|settings`, `gavel keys …`, `gavel health`.

Flags override `GAVEL_*` environment variables, which override defaults (see config.py).
Administrative commands work against the same `--database-url` with or without a running
server, and create or migrate the schema on an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

DEV_KEY_DESCRIPTION = "gavel serve --dev"
EXIT_USAGE = 2


def _settings(args: argparse.Namespace):
    from gavel.config import Settings

    overrides = {k: v for k in ("grpc_addr", "http_addr", "data_dir", "database_url", "rules",
                                "rate_limit_per_minute", "token_ttl_seconds", "sqlite_synchronous", "log_level",
                                "watch", "require_signed_bundles", "bundle_keys", "webhook_allow_private",
                                "signing_keys_file")
                 if (v := getattr(args, k, None)) is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a usage error: one line, exit 2
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        print(f"gavel: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cannot_listen(addr: str) -> str | None:
    """Why `host:port` cannot be listened on (in use, not an address of this machine), or None.

    Binds and closes a socket as the servers will (SO_REUSEADDR); port 0 always works."""
    host, _, port = addr.rpartition(":")
    if int(port) == 0:
        return None
    host = host.strip("[]")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve `{host}`: {getattr(exc, 'strerror', None) or exc}"
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(where)
            except OSError as exc:
                return exc.strerror or str(exc)
    return None


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="SQLite file and signing keys (default ./.gavel; GAVEL_DATA_DIR)")
    p.add_argument("--signing-keys-file", help="the signing key set; replicas share one (GAVEL_SIGNING_KEYS_FILE)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://… (GAVEL_DATABASE_URL)")


def cmd_serve(args: argparse.Namespace) -> int:
    from gavel.api import PolicyError
    from gavel.bootstrap import build

    settings = _settings(args)
    for flag, addr in (("--grpc-addr", settings.grpc_addr), ("--http-addr", settings.http_addr)):
        problem = cannot_listen(addr)
        if problem is not None:  # before gRPC's C core tries and logs its own line
            print(f"gavel serve: cannot listen on {addr} ({flag}): {problem}", file=sys.stderr)
            return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        runtime = build(settings)
    except PolicyError as exc:
        print(f"gavel serve: the rules in {settings.rules} do not compile:\n{exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a store or key file problem: say what, not a traceback
        print(f"gavel serve: cannot start: {exc}", file=sys.stderr)
        return 1
    import gc

    gc.freeze()  # the compiled policy lives for the whole process: keep it out of collections (p99)
    return asyncio.run(_serve(runtime, args.dev))


async def _serve(runtime, dev: bool) -> int:
    from gavel.adapters.grpc.server import GrpcServer

    settings = runtime.settings
    if dev:
        await asyncio.to_thread(_bootstrap_dev, runtime)
    server = GrpcServer(runtime)
    try:
        port = await server.start(settings.grpc_addr)
    except (OSError, RuntimeError) as exc:  # taken since `cannot_listen` looked: grpc raises RuntimeError
        print(f"gavel serve: cannot listen on {settings.grpc_addr} (--grpc-addr): {exc}", file=sys.stderr)
        await runtime.close()
        return EXIT_USAGE
    from gavel.adapters.rest.server import RestServer

    rest = RestServer(runtime, runtime.egress, server)
    try:
        http_port = await rest.start(settings.http_addr)
    except OSError as exc:
        print(f"gavel serve: cannot listen on {settings.http_addr} (--http-addr): {exc.strerror}", file=sys.stderr)
        await server.stop(0)
        return EXIT_USAGE
    host = settings.grpc_addr.rpartition(":")[0]
    print(f"gavel: serving gRPC on {host}:{port} and HTTP on {settings.http_addr.rpartition(':')[0]}:{http_port} "
          f"(rules: {settings.rules}, store: "
          f"{'sqlite' if settings.store_url.startswith('sqlite') else 'postgresql'})", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("gavel: draining…", file=sys.stderr, flush=True)
    await rest.stop()
    await server.stop(settings.drain_seconds)
    print("gavel: stopped", file=sys.stderr, flush=True)
    return 0


def _bootstrap_dev(runtime) -> None:
    from gavel.app import admin

    now = datetime.now(UTC)

    def unit(uow):
        if uow.tenants.get("dev") is None:
            admin.create_tenant(uow, "dev", "dev", now)
        uow.keys.revoke_matching("dev", DEV_KEY_DESCRIPTION, now)
        keys = {}
        for env in ("test", "live"):
            keys[env] = admin.create_key(uow, None, tenant="dev", environment=env, roles=[], principal="dev-admin",
                                         description=DEV_KEY_DESCRIPTION, now=now, random_bytes=os.urandom)["secret"]
        return keys

    keys = runtime.store.run_sync(unit)
    print("dev tenant `dev` is ready (keys from earlier --dev runs are revoked):")
    print(f"  test key: {keys['test']}")
    print(f"  live key: {keys['live']}", flush=True)


def _run_admin(args: argparse.Namespace, unit):
    from gavel.app.errors import GavelError
    from gavel.bootstrap import open_store

    store = open_store(_settings(args))
    try:
        return store.run_sync(unit)
    except GavelError as exc:
        raise SystemExit(f"gavel: {exc.message}") from None
    finally:
        asyncio.run(store.close())


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from gavel.app import admin

    result = _run_admin(args, lambda uow: admin.create_tenant(uow, args.name, args.id or "", datetime.now(UTC)))
    print(result["tenant_id"])
    return 0


UNBOUND_AGENT_KEY_WARNING = (
    "gavel keys create: warning: this agent key is bound to no agent: it can decide, consume tokens and report "
    "for every agent of {tenant}/{env}, and STRICT mode denies its requests (strict.agent_unbound). "
    "Bind it to its agents with --agent ID (repeatable).")


def _tenant_of(uow, name: str):
    from gavel.app.errors import NotFound

    tenant = uow.tenants.get(name) or uow.tenants.get_by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant `{name}`; create it with `gavel tenants create {name}`")
    return tenant


def cmd_tenants_settings(args: argparse.Namespace) -> int:
    """Print a tenant's settings for one environment, after changing them when asked to."""
    from gavel.app import settings

    now = datetime.now(UTC)

    def unit(uow):
        tenant = _tenant_of(uow, args.tenant).tenant_id
        if args.minimum_mode:
            return settings.update(uow, None, tenant=tenant, environment=args.env, mode=args.minimum_mode, now=now,
                                   random_bytes=os.urandom)
        return settings.get(uow, None, tenant, args.env)

    result = _run_admin(args, unit)
    changed = f" (changed {result['updated_at']} by {result['updated_by']})" if result["updated_at"] else " (default)"
    print(f"{result['tenant']}/{result['environment']}: minimum mode {result['minimum_mode'].upper()}{changed}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from gavel.app import admin

    now = datetime.now(UTC)
    roles = [r.strip() for r in (args.roles or "").split(",") if r.strip()]
    agents = args.agent or []

    def unit(uow):
        if args.platform:
            return admin.create_platform_key(uow, args.principal or "", args.description or "", now, os.urandom)
        if not args.tenant or not args.env:
            raise SystemExit("gavel keys create: --tenant and --env are required (or --platform)")
        tenant = _tenant_of(uow, args.tenant)
        return admin.create_key(uow, None, tenant=tenant.tenant_id, environment=args.env, roles=roles,
                                principal=args.principal or "", description=args.description or "", now=now,
                                random_bytes=os.urandom, agents=agents)["secret"]

    if args.platform and agents:
        raise SystemExit("gavel keys create: --agent binds a tenant's agent key; a platform key has no agents")
    print(_run_admin(args, unit))
    if "agent" in roles and not agents:
        print(UNBOUND_AGENT_KEY_WARNING.format(tenant=args.tenant, env=args.env), file=sys.stderr)
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from gavel.adapters.keystore import FileSigningKeys

    settings = _settings(args)
    keys = FileSigningKeys(settings.data_dir, path=settings.signing_keys_file)
    keys.ensure()
    rotated = keys.rotate(datetime.now(UTC), timedelta(days=settings.retired_key_retention_days))
    print(f"new signing key {rotated.active.kid}; {len(rotated.retired)} retired key(s) still trusted")
    return 0


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `7d` (the rules' duration syntax)."""
    import re

    m = re.fullmatch(r"([0-9]+)(s|m|h|d)", text.strip())
    if m is None:
        raise SystemExit(f"gavel: `{text}` is not a duration like 90s, 15m, 24h or 7d")
    return timedelta(seconds=int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a candidate rules directory against the recorded decisions of one tenant + env."""
    import json

    from gavel.app.principal import Principal
    from gavel.bootstrap import build
    from gavel.bundles import build_archive

    since = parse_duration(args.since)
    settings = _settings(args)
    try:
        archive = build_archive(Path(args.bundle), version="replay-candidate", author="gavel replay",
                                now=datetime.now(UTC))
    except Exception as exc:  # BundleError carries the diagnostics
        print(f"gavel replay: {exc}", file=sys.stderr)
        return 1
    runtime = build(settings)
    principal = Principal("cli", args.tenant, args.env, frozenset(), "gavel-replay")

    async def run() -> int:
        changed = []
        summary = {}
        try:
            async for r in runtime.app.replay(principal, archive, since):
                if "summary" in r:
                    summary = r["summary"]
                else:
                    changed.append(r)
        finally:
            await runtime.close()
        if args.json:
            print(json.dumps({"summary": summary, "changed": changed}, indent=2, ensure_ascii=False))
            return 0
        print(f"replayed {summary['evaluated']} decisions of {args.tenant}/{args.env} from the last {args.since} "
              f"against {summary['bundle_hash']}: {summary['changed']} would change")
        for transition, count in sorted(summary["transitions"].items()):
            print(f"  {transition}: {count}")
        for r in changed:
            print(f"\n{r['decision_id']} ({r['decided_at']}): {r['old_outcome']} {r['old_reason_code']} → "
                  f"{r['new_outcome']} {r['new_reason_code']}")
            print(f"  was: {json.loads(r['old_explain_json'])['summary']}")
            print(f"  now: {json.loads(r['new_explain_json'])['summary']}")
        return 0

    return asyncio.run(run())


def cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    addr = args.addr or _settings(args).grpc_addr
    try:
        with grpc.insecure_channel(addr) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
    except grpc.RpcError as exc:
        print(f"unreachable: {exc.code().name}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the gRPC decision service")
    add_common(p)
    p.add_argument("--grpc-addr", help="listen address (default 127.0.0.1:50051; GAVEL_GRPC_ADDR)")
    p.add_argument("--http-addr", help="REST shim address (default 127.0.0.1:8080; GAVEL_HTTP_ADDR)")
    p.add_argument("--rules", help="rules directory (default ./rules; GAVEL_RULES)")
    p.add_argument("--rate-limit-per-minute", type=int, help="per tenant and environment; 0 disables")
    p.add_argument("--token-ttl-seconds", type=int, help="decision token lifetime (default 300)")
    p.add_argument("--sqlite-synchronous", choices=("NORMAL", "FULL"),
                   help="NORMAL survives a process crash; FULL also a power loss")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING …")
    p.add_argument("--dev", action="store_true", help="create a `dev` tenant and print a test and a live key")
    p.add_argument("--watch", action="store_true", default=None,
                   help="reload the rules directory on change (a broken edit keeps the running bundle)")
    p.add_argument("--require-signed-bundles", action="store_true", default=None,
                   help="refuse published bundles that are unsigned or not signed by --bundle-keys")
    p.add_argument("--bundle-keys", help="JWKS file of trusted bundle publishers (GAVEL_BUNDLE_KEYS)")
    p.add_argument("--webhook-allow-private", action="store_true", default=None,
                   help="let webhooks target loopback, private and link-local addresses")
    p.set_defaults(run=cmd_serve)

    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(dest="tenants_cmd", required=True)
    p = tenants.add_parser("create", help="create a tenant; prints its id")
    add_common(p)
    p.add_argument("name")
    p.add_argument("--id", help="tenant id (default: derived from the name)")
    p.set_defaults(run=cmd_tenants_create)
    p = tenants.add_parser("settings", help="show (or change) a tenant's settings for one environment")
    add_common(p)
    p.add_argument("tenant", help="tenant name or id")
    p.add_argument("--env", required=True, choices=("test", "live"))
    p.add_argument("--minimum-mode", choices=("monitor", "warn", "enforce", "strict"),
                   help="the least strict mode any decision runs in (default enforce)")
    p.set_defaults(run=cmd_tenants_settings)

    keys = sub.add_parser("keys", help="API keys and signing keys").add_subparsers(dest="keys_cmd", required=True)
    p = keys.add_parser("create", help="create an API key; prints the key and nothing else")
    add_common(p)
    p.add_argument("--tenant", help="tenant name or id")
    p.add_argument("--env", choices=("test", "live"))
    p.add_argument("--roles", help="comma-separated: agent, auditor, or approver roles (default: admin)")
    p.add_argument("--principal", help="who the key acts for (default: the key id)")
    p.add_argument("--description")
    p.add_argument("--agent", action="append", metavar="ID",
                   help="bind an agent key to this agent id (repeatable); it then acts for these agents only")
    p.add_argument("--platform", action="store_true", help="a platform operator key (gk_admin_…)")
    p.set_defaults(run=cmd_keys_create)
    p = keys.add_parser("rotate-signing", help="rotate the Ed25519 signing key")
    add_common(p)
    p.set_defaults(run=cmd_keys_rotate)

    p = sub.add_parser("replay", help="what a candidate rules directory would change in recorded decisions")
    add_common(p)
    p.add_argument("--bundle", required=True, metavar="DIR", help="the candidate rules directory")
    p.add_argument("--since", required=True, metavar="DURATION", help="how far back, e.g. 24h or 7d")
    p.add_argument("--tenant", required=True)
    p.add_argument("--env", required=True, choices=("test", "live"))
    p.add_argument("--rules", help="the server's rules directory (needed to open the runtime; default ./rules)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_replay)

    p = sub.add_parser("health", help="ask a running server's gRPC health service")
    p.add_argument("--addr", help="server address (default: GAVEL_GRPC_ADDR or 127.0.0.1:50051)")
    p.set_defaults(run=cmd_health)
