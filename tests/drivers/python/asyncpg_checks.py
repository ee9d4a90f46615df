"""asyncpg through shardgate: see common.py for the output format."""

import asyncio
import io
from decimal import Decimal

import asyncpg

from common import KEYLESS, USER_COLS, Env, describe, info, out, where

env = Env()
T = env.table


async def connect():
    return await asyncpg.connect(
        host=env.host, port=env.port, user=env.user, password=env.password,
        database=env.db, timeout=10, command_timeout=15,
    )


def rec(r):
    return None if r is None else tuple(r.items())


def recs(rs):
    return [rec(r) for r in rs]


async def rows_of(conn, tag):
    return recs(await conn.fetch(f"SELECT id, val, amount FROM {T} WHERE val LIKE $1 ORDER BY id", tag + "%"))


CHECKS = []


def check(name):
    def reg(fn):
        CHECKS.append((name, fn))
        return fn
    return reg


@check("connect_ddl")
async def _(conn, val):
    val(await conn.fetchval("SELECT 1"))
    await conn.execute(f"CREATE TABLE {T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))")
    val(await conn.fetchval(f"SELECT count(*) FROM {T}"))


@check("point_reads")
async def _(conn, val):
    for k in env.keys():
        val(recs(await conn.fetch(f"SELECT {USER_COLS} FROM users WHERE id = $1", k)))


@check("keyless_reads")
async def _(conn, val):
    for sql in KEYLESS:
        val(recs(await conn.fetch(sql)))


@check("repeated_statement")
async def _(conn, val):
    # asyncpg prepares every statement (named, in its statement cache)
    keys = env.keys()
    for i in range(20):
        val(rec(await conn.fetchrow("SELECT id, name, balance FROM users WHERE id = $1", keys[i % len(keys)])))
    stmt = await conn.prepare("SELECT id, name FROM users WHERE id = $1")
    for k in keys:
        val(rec(await stmt.fetchrow(k)))


@check("insert_single")
async def _(conn, val):
    for i, k in enumerate(env.fresh(2)):
        await conn.execute(f"INSERT INTO {T} (id, val, amount) VALUES ($1, $2, $3)", k, f"insert_single {i}", Decimal(i) + Decimal("0.5"))
    val(await rows_of(conn, "insert_single"))


@check("insert_executemany")
async def _(conn, val):
    rows = [(k, f"insert_executemany {i}", Decimal(i * 3)) for i, k in enumerate(env.fresh(10))]
    await conn.executemany(f"INSERT INTO {T} (id, val, amount) VALUES ($1, $2, $3)", rows)
    val(await rows_of(conn, "insert_executemany"))


@check("txn_commit_one_shard")
async def _(conn, val):
    ids = env.fresh_one_shard(3, 0)
    async with conn.transaction():
        for i, k in enumerate(ids):
            await conn.execute(f"INSERT INTO {T} (id, val, amount) VALUES ($1, $2, $3)", k, f"txn_commit {i}", Decimal(10 + i))
        await conn.execute(f"UPDATE {T} SET amount = amount + 1 WHERE id = $1", ids[0])
        val(rec(await conn.fetchrow(f"SELECT id, amount FROM {T} WHERE id = $1", ids[0])))
    val(await rows_of(conn, "txn_commit"))


class Rollback(Exception):
    pass


@check("txn_rollback_one_shard")
async def _(conn, val):
    ids = env.fresh_one_shard(3, 1)
    try:
        async with conn.transaction():
            for i, k in enumerate(ids):
                await conn.execute(f"INSERT INTO {T} (id, val, amount) VALUES ($1, $2, $3)", k, f"txn_rollback {i}", Decimal(i))
            val(await conn.fetchval(f"SELECT count(*) FROM {T} WHERE id = $1", ids[0]))
            raise Rollback()
    except Rollback:
        pass
    val(await rows_of(conn, "txn_rollback"))
    val(await conn.fetchval(f"SELECT count(*) FROM {T} WHERE id = $1", ids[1]))


@check("txn_read_both_shards")
async def _(conn, val):
    async with conn.transaction():
        val(rec(await conn.fetchrow("SELECT count(*), sum(balance) FROM users")))
        val(recs(await conn.fetch("SELECT id, name FROM users ORDER BY id LIMIT 3")))
        for k in (env.s0[0], env.s1[0]):
            val(rec(await conn.fetchrow("SELECT id, name FROM users WHERE id = $1", k)))
    val(conn.is_in_transaction())


@check("txn_write_two_shards")
async def _(conn, val):
    a, b = env.fresh(1)
    err = "none"
    try:
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {T} (id, val) VALUES ($1, 'txn_two a')", a)
            await conn.execute(f"INSERT INTO {T} (id, val) VALUES ($1, 'txn_two b')", b)
    except asyncpg.PostgresError as e:
        err = e.sqlstate or "none"
        info("txn_write_two_shards", f"refused: [{e.sqlstate}] {e}")
    val(f"error {err}")
    val(f"after rollback SELECT 1 -> {await conn.fetchval('SELECT 1')}")
    val(f"rows left {await conn.fetchval(f'SELECT count(*) FROM {T} WHERE val LIKE $1', 'txn_two%')}")


@check("cursor_prefetch")
async def _(conn, val):
    # a portal read 10 rows at a time (Execute with a row limit), in a transaction
    got = []
    async with conn.transaction():
        async for r in conn.cursor("SELECT id, user_id, total FROM orders ORDER BY id", prefetch=10):
            got.append(rec(r))
    val(len(got))
    val(got)


@check("copy_in")
async def _(conn, val):
    # binary COPY
    records = [(k, f"copy_in {i}", Decimal(i) / 4) for i, k in enumerate(env.fresh(8))]
    info("copy_in", await conn.copy_records_to_table(T, records=records, columns=["id", "val", "amount"]))
    val(await rows_of(conn, "copy_in"))


@check("copy_out")
async def _(conn, val):
    buf = io.BytesIO()
    await conn.copy_from_query("SELECT id, name, balance, tags FROM users ORDER BY id", output=buf, format="csv")
    val(buf.getvalue().split(b"\n"))
    buf = io.BytesIO()
    await conn.copy_from_table("orders", columns=["id", "user_id", "total", "status"], output=buf)
    val(sorted(buf.getvalue().splitlines()))


@check("sql_prepare")
async def _(conn, val):
    await conn.execute("PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1")
    for k in env.keys():
        val(recs(await conn.fetch(f"EXECUTE byid({int(k)})")))
    await conn.execute("DEALLOCATE byid")


async def main():
    for name, fn in CHECKS:
        out(f"# start {name}")
        conn = None
        try:
            conn = await asyncio.wait_for(connect(), 15)
            await asyncio.wait_for(fn(conn, lambda v, n=name: out(f"= {n}: {v}")), 20)
            out(f"ok {name}")
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, asyncio.TimeoutError):
                out(f"FAIL {name}: no answer within 20 s (client-side timeout)")
            else:
                out(f"FAIL {name}: {describe(e)}{where(e)}")
        finally:
            if conn is not None:
                conn.terminate()


asyncio.run(main())
