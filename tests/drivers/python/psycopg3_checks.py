"""psycopg 3 through shardgate: see common.py for the output format."""

from decimal import Decimal

import psycopg

from common import KEYLESS, USER_COLS, Env, check, info

env = Env()
T = env.table
CONNINFO = (
    f"host={env.host} port={env.port} user={env.user} password={env.password} "
    f"dbname={env.db} connect_timeout=10"
)


def connect(**kw):
    kw.setdefault("autocommit", True)
    return psycopg.connect(CONNINFO, **kw)


def rows_of(conn, tag):
    return conn.execute(
        f"SELECT id, val, amount FROM {T} WHERE val LIKE %s ORDER BY id", (tag + "%",)
    ).fetchall()


@check("connect_ddl")
def _(val):
    with connect() as conn:
        val(conn.execute("SELECT 1 AS one").fetchone())
        conn.execute(
            f"CREATE TABLE {T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))"
        )
        val(conn.execute(f"SELECT count(*) FROM {T}").fetchone())


@check("point_reads")
def _(val):
    with connect() as conn:
        for k in env.keys():
            val(conn.execute(f"SELECT {USER_COLS} FROM users WHERE id = %s", (k,)).fetchall())


@check("point_reads_binary")
def _(val):
    with connect() as conn:
        cur = conn.cursor(binary=True)
        for k in env.keys():
            cur.execute(f"SELECT {USER_COLS} FROM users WHERE id = %s", (k,))
            val(cur.fetchall())


@check("keyless_reads")
def _(val):
    with connect() as conn:
        for sql in KEYLESS:
            val(conn.execute(sql).fetchall())


@check("repeated_statement")
def _(val):
    # psycopg prepares a statement on the server from its 5th execution
    # (prepare_threshold = 5): 20 runs cover both the unnamed and the named path.
    with connect() as conn:
        keys = env.keys()
        for i in range(20):
            k = keys[i % len(keys)]
            val(conn.execute("SELECT id, name, balance FROM users WHERE id = %s", (k,)).fetchone())


@check("insert_single")
def _(val):
    with connect() as conn:
        for i, k in enumerate(env.fresh(2)):
            conn.execute(
                f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)",
                (k, f"insert_single {i}", Decimal(i) + Decimal("0.5")),
            )
        val(rows_of(conn, "insert_single"))


@check("insert_executemany")
def _(val):
    with connect() as conn:
        rows = [(k, f"insert_executemany {i}", Decimal(i * 3)) for i, k in enumerate(env.fresh(10))]
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)", rows)
        val(rows_of(conn, "insert_executemany"))


@check("insert_executemany_returning")
def _(val):
    with connect() as conn:
        rows = [(k, f"insert_returning {i}", Decimal(i)) for i, k in enumerate(env.fresh(4))]
        got = []
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s) RETURNING id, val",
                rows,
                returning=True,
            )
            while True:
                got.append(cur.fetchone())
                if not cur.nextset():
                    break
        val(got)
        val(rows_of(conn, "insert_returning"))


@check("insert_pipeline")
def _(val):
    with connect() as conn:
        ids = env.fresh(6)
        with conn.pipeline():
            for i, k in enumerate(ids):
                conn.execute(
                    f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)",
                    (k, f"insert_pipeline {i}", Decimal(i)),
                )
            cur = conn.execute(f"SELECT count(*) FROM {T} WHERE id = %s", (ids[0],))
        val(cur.fetchone())
        val(rows_of(conn, "insert_pipeline"))


@check("txn_commit_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 0)
    with connect() as conn:
        with conn.transaction():
            for i, k in enumerate(ids):
                conn.execute(
                    f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)",
                    (k, f"txn_commit {i}", Decimal(10 + i)),
                )
            conn.execute(f"UPDATE {T} SET amount = amount + 1 WHERE id = %s", (ids[0],))
            val(conn.execute(f"SELECT id, amount FROM {T} WHERE id = %s", (ids[0],)).fetchone())
        val(rows_of(conn, "txn_commit"))


@check("txn_rollback_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 1)
    with connect() as conn:
        with conn.transaction() as tx:
            for i, k in enumerate(ids):
                conn.execute(
                    f"INSERT INTO {T} (id, val, amount) VALUES (%s, %s, %s)",
                    (k, f"txn_rollback {i}", Decimal(i)),
                )
            val(conn.execute(f"SELECT count(*) FROM {T} WHERE id = %s", (ids[0],)).fetchone())
            raise psycopg.Rollback(tx)
        val(rows_of(conn, "txn_rollback"))
        val(conn.execute(f"SELECT count(*) FROM {T} WHERE id = %s", (ids[1],)).fetchone())


@check("txn_read_both_shards")
def _(val):
    s0, s1 = env.s0[0], env.s1[0]
    with connect() as conn:
        with conn.transaction():
            val(conn.execute("SELECT count(*), sum(balance) FROM users").fetchone())
            val(conn.execute("SELECT id, name FROM users ORDER BY id LIMIT 3").fetchall())
            val(conn.execute("SELECT id, name FROM users WHERE id = %s", (s0,)).fetchone())
            val(conn.execute("SELECT id, name FROM users WHERE id = %s", (s1,)).fetchone())
        val(conn.info.transaction_status.name)


@check("txn_write_two_shards")
def _(val):
    a, b = env.fresh(1)
    with connect() as conn:
        err = "none"
        try:
            with conn.transaction():
                conn.execute(f"INSERT INTO {T} (id, val) VALUES (%s, 'txn_two a')", (a,))
                conn.execute(f"INSERT INTO {T} (id, val) VALUES (%s, 'txn_two b')", (b,))
        except psycopg.Error as e:
            err = e.sqlstate or "none"
            info("txn_write_two_shards", f"refused: [{e.sqlstate}] {e}")
        val(f"error {err}")
        # conn.transaction() rolled back on the error
        val(f"after rollback SELECT 1 -> {conn.execute('SELECT 1').fetchone()[0]}")
        val(f"rows left {conn.execute(f'SELECT count(*) FROM {T} WHERE val LIKE %s', ('txn_two%',)).fetchone()[0]}")


@check("server_cursor")
def _(val):
    # a named cursor: DECLARE … CURSOR and FETCH FORWARD itersize, in a transaction
    with connect(autocommit=False) as conn:
        with conn.cursor(name="all_orders") as cur:
            cur.itersize = 10
            cur.execute("SELECT id, user_id, total FROM orders ORDER BY id")
            got = list(cur)
        conn.commit()
        val(len(got))
        val(got)


@check("copy_in")
def _(val):
    ids = env.fresh(8)
    with connect() as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {T} (id, val, amount) FROM STDIN") as copy:
                for i, k in enumerate(ids):
                    copy.write_row((k, f"copy_in {i}", Decimal(i) / 4))
            info("copy_in", f"rowcount {cur.rowcount}")
        val(rows_of(conn, "copy_in"))


@check("copy_out")
def _(val):
    with connect() as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, name, balance, tags FROM users ORDER BY id) TO STDOUT") as copy:
                val(b"".join(bytes(b) for b in copy).split(b"\n"))
            lines = []
            with cur.copy("COPY orders (id, user_id, total, status) TO STDOUT") as copy:
                for row in copy.rows():
                    lines.append(row)
            val(sorted(lines))


@check("sql_prepare")
def _(val):
    with connect() as conn:
        conn.execute("PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1")
        for k in env.keys():
            val(conn.execute(f"EXECUTE byid({int(k)})").fetchall())
        conn.execute("DEALLOCATE byid")
