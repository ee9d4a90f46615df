"""psycopg2 through shardgate: see common.py for the output format."""

import io
from decimal import Decimal

import psycopg2
import psycopg2.extras

from common import KEYLESS, USER_COLS, Env, check, info

# (psycopg2 blocks in libpq: a check's alarm fires only when a call returns;
# the Rust side kills a script that hangs.)

env = Env()
T = env.table


def connect(autocommit=True):
    conn = psycopg2.connect(
        host=env.host, port=env.port, user=env.user, password=env.password,
        dbname=env.db, connect_timeout=10,
    )
    conn.autocommit = autocommit
    return conn


def rows_of(cur, tag):
    cur.execute(f"SELECT id, val, amount FROM {T} WHERE val LIKE %s ORDER BY id", (tag + "%",))
    return cur.fetchall()


@check("connect_ddl")
def _(val):
    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    val(cur.fetchone())
    cur.execute(f"CREATE TABLE {T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))")
    cur.execute(f"SELECT count(*) FROM {T}")
    val(cur.fetchone())
    conn.close()


@check("point_reads")
def _(val):
    conn = connect()
    cur = conn.cursor()
    for k in env.keys():
        cur.execute(f"SELECT {USER_COLS} FROM users WHERE id = %s", (k,))
        val([tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()])
    conn.close()


@check("keyless_reads")
def _(val):
    conn = connect()
    cur = conn.cursor()
    for sql in KEYLESS:
        cur.execute(sql)
        val(cur.fetchall())
    conn.close()


@check("repeated_statement")
def _(val):
    conn = connect()
    cur = conn.cursor()
    keys = env.keys()
    for i in range(20):
        cur.execute("SELECT id, name, balance FROM users WHERE id = %s", (keys[i % len(keys)],))
        val(cur.fetchone())
    conn.close()


@check("insert_single")
def _(val):
    # the default mode: psycopg2 opens a transaction, conn.commit() ends it
    conn = connect(autocommit=False)
    cur = conn.cursor()
    for i, k in enumerate(env.fresh_one_shard(1, 0) + env.fresh_one_shard(1, 1)):
        cur.execute(
            f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)",
            (k, f"insert_single {i}", Decimal(i) + Decimal("0.5")),
        )
        conn.commit()
    val(rows_of(cur, "insert_single"))
    conn.commit()
    conn.close()


@check("insert_execute_batch")
def _(val):
    conn = connect()
    cur = conn.cursor()
    rows = [(k, f"insert_execute_batch {i}", Decimal(i * 3)) for i, k in enumerate(env.fresh(10))]
    psycopg2.extras.execute_batch(
        cur, f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)", rows, page_size=4
    )
    val(rows_of(cur, "insert_execute_batch"))
    conn.close()


@check("insert_execute_values")
def _(val):
    conn = connect()
    cur = conn.cursor()
    rows = [(k, f"insert_execute_values {i}", Decimal(i * 2)) for i, k in enumerate(env.fresh(10))]
    psycopg2.extras.execute_values(
        cur, f"INSERT INTO {T} (id, val, amount) VALUES %s", rows, page_size=100
    )
    val(rows_of(cur, "insert_execute_values"))
    conn.close()


@check("insert_executemany")
def _(val):
    conn = connect()
    cur = conn.cursor()
    rows = [(k, f"insert_executemany {i}", Decimal(i)) for i, k in enumerate(env.fresh(5))]
    cur.executemany(f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)", rows)
    val(rows_of(cur, "insert_executemany"))
    conn.close()


@check("txn_commit_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 0)
    conn = connect(autocommit=False)
    cur = conn.cursor()
    for i, k in enumerate(ids):
        cur.execute(f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)", (k, f"txn_commit {i}", Decimal(10 + i)))
    cur.execute(f"UPDATE {T} SET amount = amount + 1 WHERE id = %s", (ids[0],))
    cur.execute(f"SELECT id, amount FROM {T} WHERE id = %s", (ids[0],))
    val(cur.fetchone())
    conn.commit()
    val(rows_of(cur, "txn_commit"))
    conn.commit()
    conn.close()


@check("txn_rollback_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 1)
    conn = connect(autocommit=False)
    cur = conn.cursor()
    for i, k in enumerate(ids):
        cur.execute(f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)", (k, f"txn_rollback {i}", Decimal(i)))
    cur.execute(f"SELECT count(*) FROM {T} WHERE id = %s", (ids[0],))
    val(cur.fetchone())
    conn.rollback()
    val(rows_of(cur, "txn_rollback"))
    cur.execute(f"SELECT count(*) FROM {T} WHERE id = %s", (ids[1],))
    val(cur.fetchone())
    conn.rollback()
    conn.close()


@check("txn_read_both_shards")
def _(val):
    conn = connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("SELECT count(*), sum(balance) FROM users")
    val(cur.fetchone())
    cur.execute("SELECT id, name FROM users ORDER BY id LIMIT 3")
    val(cur.fetchall())
    for k in (env.s0[0], env.s1[0]):
        cur.execute("SELECT id, name FROM users WHERE id = %s", (k,))
        val(cur.fetchone())
    val(conn.get_transaction_status())
    conn.commit()
    conn.close()


@check("txn_write_two_shards")
def _(val):
    a, b = env.fresh(1)
    conn = connect(autocommit=False)
    cur = conn.cursor()
    err = "none"
    try:
        cur.execute(f"INSERT INTO {T} (id, val) VALUES (%s, 'txn_two a')", (a,))
        cur.execute(f"INSERT INTO {T} (id, val) VALUES (%s, 'txn_two b')", (b,))
        conn.commit()
    except psycopg2.Error as e:
        err = e.pgcode or "none"
        info("txn_write_two_shards", f"refused: [{e.pgcode}] {' | '.join(str(e).splitlines())}")
        conn.rollback()
    val(f"error {err}")
    cur.execute("SELECT 1")
    val(f"after rollback SELECT 1 -> {cur.fetchone()[0]}")
    cur.execute(f"SELECT count(*) FROM {T} WHERE val LIKE %s", ("txn_two%",))
    val(f"rows left {cur.fetchone()[0]}")
    conn.rollback()
    conn.close()


@check("server_cursor")
def _(val):
    conn = connect(autocommit=False)
    cur = conn.cursor(name="all_orders")
    cur.itersize = 10
    cur.execute("SELECT id, user_id, total FROM orders ORDER BY id")
    got = list(cur)
    cur.close()
    conn.commit()
    val(len(got))
    val(got)
    conn.close()


@check("copy_in")
def _(val):
    conn = connect()
    cur = conn.cursor()
    data = "".join(f"{k}\tcopy_in {i}\t{Decimal(i) / 4}\n" for i, k in enumerate(env.fresh(8)))
    cur.copy_expert(f"COPY {T} (id, val, amount) FROM STDIN", io.StringIO(data))
    info("copy_in", f"rowcount {cur.rowcount}")
    val(rows_of(cur, "copy_in"))
    conn.close()


@check("copy_out")
def _(val):
    conn = connect()
    cur = conn.cursor()
    buf = io.StringIO()
    cur.copy_expert("COPY (SELECT id, name, balance, tags FROM users ORDER BY id) TO STDOUT", buf)
    val(buf.getvalue().split("\n"))
    buf = io.StringIO()
    cur.copy_expert("COPY orders (id, user_id, total, status) TO STDOUT WITH (FORMAT csv)", buf)
    val(sorted(buf.getvalue().splitlines()))
    conn.close()


@check("sql_prepare")
def _(val):
    conn = connect()
    cur = conn.cursor()
    cur.execute("PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1")
    for k in env.keys():
        cur.execute("EXECUTE byid(%s)", (k,))
        val(cur.fetchall())
    cur.execute("DEALLOCATE byid")
    conn.close()
