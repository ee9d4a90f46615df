"""Shared plumbing of the Python driver scripts of shardgate's driver matrix.

Every script prints, on stdout, one line per event:

    # start NAME          a check begins (tells which check hung, if one does)
    = NAME: VALUE         a value the check read; compared with the reference run
    # NAME: TEXT          information only (not compared)
    ok NAME               the check ran to its end
    FAIL NAME: REASON     it raised (REASON has the SQLSTATE when there is one)

The Rust side (tests/integration/tests/drivers.rs) runs the same script
against a plain reference Postgres and against shardgate and compares the
two outputs. Connection details and keys come from the environment:
SG_HOST, SG_PORT, SG_USER, SG_PASSWORD, SG_DB, SG_TABLE (this driver's
scratch table, hashed on id), SG_S0/SG_S1 (ids of existing users on shard s0
/ s1), SG_W0/SG_W1 (fresh ids for new rows that hash to s0 / s1).
"""

import os
import signal
import sys
import traceback


def _ids(name):
    return [int(x) for x in os.environ[name].split(",") if x]


class Env:
    def __init__(self):
        self.host = os.environ.get("SG_HOST", "127.0.0.1")
        self.port = int(os.environ["SG_PORT"])
        self.user = os.environ.get("SG_USER", "shop")
        self.password = os.environ.get("SG_PASSWORD", "shop")
        self.db = os.environ.get("SG_DB", "shop")
        self.table = os.environ["SG_TABLE"]
        self.s0 = _ids("SG_S0")
        self.s1 = _ids("SG_S1")
        self.w0 = _ids("SG_W0")
        self.w1 = _ids("SG_W1")
        self._next = 0

    def keys(self):
        """Existing user ids, alternating between the two shards."""
        out = []
        for a, b in zip(self.s0, self.s1):
            out += [a, b]
        return out

    def fresh(self, n):
        """n new ids on s0 and n on s1, alternating; never handed out twice."""
        i = self._next
        self._next += n
        if self._next > min(len(self.w0), len(self.w1)):
            raise RuntimeError("out of fresh ids")
        out = []
        for a, b in zip(self.w0[i : i + n], self.w1[i : i + n]):
            out += [a, b]
        return out

    def fresh_one_shard(self, n, shard):
        """n new ids all on one shard (0 or 1)."""
        ids = self.fresh(n)
        return ids[shard::2]


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def describe(e):
    """An exception as `[SQLSTATE] Class: message`, on one line."""
    inner = getattr(e, "orig", None)  # SQLAlchemy wraps the DBAPI error
    if inner is not None and inner is not e:
        return f"{type(e).__name__} <- {describe(inner)}"
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
    text = " | ".join(str(e).strip().splitlines()) or repr(e)
    if len(text) > 400:
        text = text[:400] + "…"
    return f"[{state or 'no SQLSTATE'}] {type(e).__name__}: {text}"


def where(e):
    """` (at NAME.py:LINE: SOURCE)`: the script's line that raised."""
    script = os.path.abspath(sys.argv[0])
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == script]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {os.path.basename(f.filename)}:{f.lineno}: {(f.line or '').strip()[:120]})"


def sqlstate(e):
    inner = getattr(e, "orig", None)
    if inner is not None and inner is not e:
        return sqlstate(inner)
    return getattr(e, "sqlstate", None) or getattr(e, "pgcode", None) or "none"


class CheckTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CheckTimeout("no answer within the check's time limit (client-side alarm)")


signal.signal(signal.SIGALRM, _alarm)


def check(name, timeout=20):
    """Decorator: runs the function at once as check `name`; it gets `val`."""

    def run(fn):
        out(f"# start {name}")
        signal.alarm(timeout)
        try:
            fn(lambda v: out(f"= {name}: {v}"))
            signal.alarm(0)
            out(f"ok {name}")
        except BaseException as e:  # noqa: BLE001 - report everything
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            out(f"FAIL {name}: {describe(e)}{where(e)}")
        return fn

    return run


def info(name, text):
    out(f"# {name}: {text}")


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


# The statements every driver runs, with the driver's own placeholder style
# filled in by the script.
USER_COLS = "id, name, email, balance, created_at, profile, tags, avatar, uid"
KEYLESS = [
    "SELECT id, name FROM users ORDER BY id LIMIT 5",
    "SELECT id, balance FROM users ORDER BY balance DESC NULLS LAST, id LIMIT 7 OFFSET 2",
    "SELECT count(*), sum(balance), min(balance), max(balance), min(created_at), max(created_at) FROM users",
    "SELECT status, count(*), sum(total), min(total), max(total) FROM orders GROUP BY status ORDER BY status",
    "SELECT user_id, count(*) AS n, sum(total) FROM orders GROUP BY user_id ORDER BY sum(total) DESC, user_id LIMIT 5",
    "SELECT id, name, price FROM products ORDER BY id",
    "SELECT count(*) FROM orders WHERE total > 100",
]
