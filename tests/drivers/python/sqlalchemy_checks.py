"""The SQLAlchemy 2 ORM (on psycopg 3) through shardgate: see common.py."""

import datetime
import uuid
from decimal import Decimal
from typing import Optional

from sqlalchemy import (BigInteger, ForeignKey, LargeBinary, Numeric, Text,
                        create_engine, func, select, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, mapped_column,
                            relationship)
from sqlalchemy.types import DateTime

from common import Env, check, info, sqlstate

env = Env()
T = env.table

engine = create_engine(
    f"postgresql+psycopg://{env.user}:{env.password}@{env.host}:{env.port}/{env.db}",
    connect_args={"connect_timeout": 10},
    pool_size=2,
)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[Optional[str]] = mapped_column(Text)
    balance: Mapped[Optional[Decimal]] = mapped_column(Numeric(12, 2))
    created_at: Mapped[Optional[datetime.datetime]] = mapped_column(DateTime(timezone=True))
    profile: Mapped[Optional[dict]] = mapped_column(JSONB)
    tags: Mapped[Optional[list]] = mapped_column(ARRAY(Text))
    avatar: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    uid: Mapped[Optional[uuid.UUID]] = mapped_column(UUID)
    orders: Mapped[list["Order"]] = relationship(back_populates="user", order_by="Order.id")

    def row(self):
        return (self.id, self.name, self.email, self.balance, self.created_at,
                self.profile, self.tags, self.avatar, self.uid)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(Text)
    user: Mapped[User] = relationship(back_populates="orders")


class Scratch(Base):
    __tablename__ = T
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    val: Mapped[str] = mapped_column(Text)
    amount: Mapped[Optional[Decimal]] = mapped_column(Numeric(10, 2))


def scratch_rows(session, tag):
    q = select(Scratch).where(Scratch.val.like(tag + "%")).order_by(Scratch.id)
    return [(s.id, s.val, s.amount) for s in session.scalars(q)]


@check("connect_ddl")
def _(val):
    with engine.connect() as conn:
        val(conn.execute(text("SELECT 1")).scalar_one())
    try:
        # create_all runs in a transaction (BEGIN; catalog look-up; CREATE TABLE; COMMIT)
        Base.metadata.create_all(engine, tables=[Scratch.__table__])
    except BaseException:
        # so that the later checks have their table, create it outside a
        # transaction; this check still fails
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))"))
        raise
    with Session(engine) as session:
        val(session.scalar(select(func.count()).select_from(Scratch)))


@check("point_reads")
def _(val):
    for k in env.keys():
        with Session(engine) as session:
            u = session.get(User, k)
            val(u.row() if u else None)


@check("relationship_load")
def _(val):
    # lazy load of a user's orders: the same key, a second statement
    for k in env.keys():
        with Session(engine) as session:
            u = session.get(User, k)
            val([(o.id, o.user_id, o.total, o.status) for o in u.orders])


@check("keyless_reads")
def _(val):
    with Session(engine) as session:
        val([u.id for u in session.scalars(select(User).order_by(User.id).limit(5))])
        val([(u.id, u.balance) for u in session.scalars(
            select(User).order_by(User.balance.desc().nulls_last(), User.id).limit(7).offset(2))])
        val(session.execute(select(func.count(User.id), func.sum(User.balance), func.min(User.created_at),
                                   func.max(User.created_at))).all())
        val(session.execute(select(Order.status, func.count(), func.sum(Order.total))
                            .group_by(Order.status).order_by(Order.status)).all())


@check("repeated_statement")
def _(val):
    keys = env.keys()
    with engine.connect() as conn:
        for i in range(20):
            val(conn.execute(select(User.id, User.name, User.balance).where(User.id == keys[i % len(keys)])).all())


@check("insert_add_all")
def _(val):
    ids = env.fresh(8)
    with Session(engine) as session:
        session.add_all([Scratch(id=k, val=f"insert_add_all {i}", amount=Decimal(i)) for i, k in enumerate(ids)])
        session.commit()
    with Session(engine) as session:
        val(scratch_rows(session, "insert_add_all"))


@check("insert_one_shard_add_all")
def _(val):
    # a unit of work whose rows all live on one shard
    ids = env.fresh_one_shard(6, 0)
    with Session(engine) as session:
        session.add_all([Scratch(id=k, val=f"insert_one_shard {i}", amount=Decimal(i)) for i, k in enumerate(ids)])
        session.commit()
    with Session(engine) as session:
        val(scratch_rows(session, "insert_one_shard"))


@check("txn_commit_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 0)
    with Session(engine) as session:
        with session.begin():
            session.add_all([Scratch(id=k, val=f"txn_commit {i}", amount=Decimal(10 + i)) for i, k in enumerate(ids)])
            session.flush()
            s = session.get(Scratch, ids[0])
            s.amount += 1
    with Session(engine) as session:
        val(scratch_rows(session, "txn_commit"))


@check("txn_rollback_one_shard")
def _(val):
    ids = env.fresh_one_shard(3, 1)
    with Session(engine) as session:
        session.add_all([Scratch(id=k, val=f"txn_rollback {i}", amount=Decimal(i)) for i, k in enumerate(ids)])
        session.flush()
        val(session.scalar(select(func.count()).select_from(Scratch).where(Scratch.id == ids[0])))
        session.rollback()
    with Session(engine) as session:
        val(scratch_rows(session, "txn_rollback"))


@check("txn_read_both_shards")
def _(val):
    with Session(engine) as session:
        val(session.execute(select(func.count(User.id), func.sum(User.balance))).all())
        val([u.id for u in session.scalars(select(User).order_by(User.id).limit(3))])
        for k in (env.s0[0], env.s1[0]):
            val(session.get(User, k).name)
        session.commit()


@check("txn_write_two_shards")
def _(val):
    a, b = env.fresh(1)
    with Session(engine) as session:
        err = "none"
        try:
            session.add_all([Scratch(id=a, val="txn_two a"), Scratch(id=b, val="txn_two b")])
            session.commit()
        except DBAPIError as e:
            err = sqlstate(e)
            info("txn_write_two_shards", f"refused: [{err}] {' | '.join(str(e.orig).splitlines())}")
            session.rollback()
        val(f"error {err}")
        val(f"after rollback SELECT 1 -> {session.execute(text('SELECT 1')).scalar_one()}")
        val(f"rows left {session.scalar(select(func.count()).select_from(Scratch).where(Scratch.val.like('txn_two%')))}")


@check("yield_per")
def _(val):
    # a server-side cursor (psycopg named cursor) read in batches of 10
    with Session(engine) as session:
        got = [(o.id, o.user_id, o.total) for o in session.scalars(
            select(Order).order_by(Order.id).execution_options(yield_per=10))]
        val(len(got))
        val(got)


@check("sql_prepare")
def _(val):
    with engine.connect() as conn:
        conn.execute(text("PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1"))
        for k in env.keys():
            val(conn.execute(text(f"EXECUTE byid({int(k)})")).all())
        conn.execute(text("DEALLOCATE byid"))
        conn.commit()
