"""Screen-pop lookup by mobile over 1,000,000 patients: p50 / p99 through the service layer and HTTP.

    .venv/bin/python bench/patient_lookup.py [--patients 1000000] [--lookups 5000]

PostgreSQL comes from BENCH_PG_DSN (default: TEST_PG_DSN, else postgresql://postgres@127.0.0.1:5432/postgres).
The script creates a throw-away database, migrates it, bulk-loads patients with COPY (plus
family members, medical records, completed orders and fund accounts, so the lookup has
something to join), measures, and drops the database at the end. Aim: p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from callcenter_common.auth import Principal, TokenIssuer, generate_keypair
from callcenter_common.bus import InMemoryBus
from callcenter_common.db import Database
from callcenter_common.migrations import upgrade_database
from callcenter_common.settings import PlatformSettings
from patient.config import PatientSettings
from patient.crypto import IdNumberCipher
from patient.main import MIGRATIONS, create_app
from patient.notifier import Notifier
from patient.service import PatientService

ADMIN_DSN = os.environ.get("BENCH_PG_DSN") or os.environ.get(
    "TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AGENTS = [f"A{1000 + i}" for i in range(300)]


def mobile_of(i: int) -> str:
    return f"13{i:09d}"


async def load(dsn: str, patients: int) -> None:
    """Set-based INSERT … SELECT FROM generate_series: the rows never leave the server."""
    conn = await asyncpg.connect(dsn)
    try:
        scheme_id = await conn.fetchval(
            "INSERT INTO level_schemes (code, name, description, is_default) VALUES ('standard', '消费等级', '', true)"
            " RETURNING id"
        )
        await conn.execute(
            "INSERT INTO member_levels (scheme_id, code, name, rank, treatment_price_percent, benefits)"
            " SELECT $1, 'level' || r, 'level ' || r, r, 100 - 5 * r, '' FROM generate_series(0, 3) r",
            scheme_id,
        )
        steps = {
            "patients": """
                INSERT INTO patients (id, mobile, name, gender, city, source_channel, level_scheme_id, level_id,
                    cumulative_order_amount_fen, cumulative_order_count, points_balance, owner_user_id,
                    owner_work_number, owner_assigned_at, registered_at, registered_by, updated_at)
                SELECT i, '13' || lpad(i::text, 9, '0'), '患者' || i, CASE WHEN i % 2 = 1 THEN 'female' ELSE 'male' END,
                    '广州市', 'walk_in', $2, (SELECT min(id) FROM member_levels) + i % 4, 0, 0, i % 5000,
                    'u-a' || (1000 + i % 300), 'A' || (1000 + i % 300), now(), now(), 'bench', now()
                FROM generate_series(1, $1::int) i""",
            "fund accounts": """
                INSERT INTO fund_accounts (patient_id, balance_fen, updated_at)
                SELECT i, (i % 100) * 100, now() FROM generate_series(1, $1::int) i""",
            "family members": """
                INSERT INTO family_members (patient_id, relation, name, gender, created_at, updated_at)
                SELECT i, 'spouse', '家属' || i, 'female', now(), now() FROM generate_series(3, $1::int, 3) i""",
            "medical records": """
                INSERT INTO medical_records (patient_id, visit_date, person_name, symptoms, diagnosis, treatment_plan,
                    treatment_schedule, visit_kind, doctor_name, created_by, created_at, updated_at)
                SELECT i, date '2025-01-01' + ((i * 7 + n * 31) % 400), '患者' || i, '失眠', '心脾两虚', '归脾汤',
                    '每周一次', 'return', '黄医生', 'bench', now(), now()
                FROM generate_series(1, $1::int) i, generate_series(1, 2) n WHERE n <= i % 3""",
            "completed orders": """
                INSERT INTO order_completions (patient_id, order_id, amount_fen, points_earned, completed_at)
                SELECT i, 'O-' || i, 12300, 123, now() FROM generate_series(2, $1::int, 2) i""",
        }
        # Secondary indexes are built once after the load, which is much faster than row by row.
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' AND tablename = ANY($1::text[])"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            ["patients", "fund_accounts", "family_members", "medical_records", "order_completions"],
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        # The rows are consistent by construction: skip the per-row foreign-key triggers while loading.
        await conn.execute("SET session_replication_role = replica")
        started = time.perf_counter()
        for label, sql in steps.items():
            args = (patients, scheme_id) if label == "patients" else (patients,)
            status = await conn.execute(sql, *args)
            print(f"  {label:<17} {status.split()[-1]:>10} rows  ({time.perf_counter() - started:5.1f} s)", flush=True)
        await conn.execute("RESET session_replication_role")
        for index in indexes:
            await conn.execute(index["indexdef"])
        print(f"  {len(indexes)} secondary indexes rebuilt ({time.perf_counter() - started:5.1f} s)", flush=True)
        for table in ("patients", "member_levels", "level_schemes"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # Leave no vacuum, analyze or checkpoint work behind to disturb the measurement.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def summarize(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(
        f"{label:<28} n={len(ms):>6}  p50={q[49]:6.2f} ms  p95={q[94]:6.2f} ms  "
        f"p99={q[98]:6.2f} ms  max={ms[-1]:6.2f} ms"
    )


async def bench_service(url: str, settings: PatientSettings, patients: int, lookups: int) -> list[float]:
    db = Database(url)
    key = base64.b64decode(settings.id_number_key)
    service = PatientService(settings, IdNumberCipher(key), Notifier(_no_publish))
    rng = random.Random(11)
    samples: list[float] = []
    try:
        for n in range(lookups + 500):
            i = rng.randrange(1, patients + 1)
            owner = AGENTS[i % 300]
            principal = Principal(user_id=f"u-{owner.lower()}", work_number=owner, roles=frozenset({"agent"}))
            started = time.perf_counter()
            async with db.session() as session:
                result = await service.lookup_by_mobile(session, principal, mobile_of(i))
            elapsed = time.perf_counter() - started
            assert result.owner is not None and result.owner.work_number == owner
            if n >= 500:  # the first ones warm the pool and the caches
                samples.append(elapsed)
    finally:
        await db.dispose()
    return samples


async def bench_http(settings: PatientSettings, patients: int, lookups: int) -> list[float]:
    private, public = generate_keypair()
    settings.platform.jwt_public_key = public
    issuer = TokenIssuer(private, issuer=settings.platform.jwt_issuer, audience=settings.platform.jwt_audience)
    bus = InMemoryBus()
    app = create_app(settings, bus=bus)
    tokens = {
        a: issuer.issue(user_id=f"u-{a.lower()}", work_number=a, roles=["agent"], ttl_seconds=3600) for a in AGENTS
    }
    rng = random.Random(13)
    samples: list[float] = []
    await bus.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for n in range(lookups + 500):
                    i = rng.randrange(1, patients + 1)
                    headers = {"Authorization": f"Bearer {tokens[AGENTS[i % 300]]}"}
                    started = time.perf_counter()
                    r = await client.get(f"/patients/by-mobile/{mobile_of(i)}", headers=headers)
                    elapsed = time.perf_counter() - started
                    assert r.status_code == 200, r.text
                    if n >= 500:
                        samples.append(elapsed)
    finally:
        await bus.close()
    return samples


async def _no_publish(*_: object) -> None:
    raise AssertionError("a lookup publishes nothing")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    args = parser.parse_args()

    name = f"bench_patient_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    settings = PatientSettings(
        database_url=url,
        migrate_on_start=False,
        id_number_key=base64.b64encode(os.urandom(32)).decode(),
        platform=PlatformSettings(env="test", bus="memory", log_json=False, var_dir=Path("var")),
    )
    try:
        print(f"database {name}: migrating, loading {args.patients:,} patients")
        db = Database(url)
        await upgrade_database(db, MIGRATIONS)
        await db.dispose()
        started = time.perf_counter()
        await load(dsn, args.patients)
        print(f"loaded in {time.perf_counter() - started:.1f} s")
        summarize("service lookup_by_mobile", await bench_service(url, settings, args.patients, args.lookups))
        summarize("HTTP GET /by-mobile/{mobile}", await bench_http(settings, args.patients, args.lookups))
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        print(f"dropped {name}")


if __name__ == "__main__":
    asyncio.run(main())
