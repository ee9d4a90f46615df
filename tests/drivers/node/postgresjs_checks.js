// postgres.js (`postgres`) through shardgate: see common.js for the output format.
'use strict';

const postgres = require('postgres');
const { pipeline } = require('node:stream/promises');
const { Readable, Writable } = require('node:stream');
const { Env, out, runChecks, USER_COLS, KEYLESS } = require('./common');

const env = new Env();
const T = env.table;

async function withSql(fn, options = {}) {
  const sql = postgres({
    host: env.host, port: env.port, user: env.user, password: env.password, database: env.db,
    max: 1, connect_timeout: 10, idle_timeout: 5, onnotice: () => {}, ...options,
  });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 }).catch(() => {});
  }
}

// rows without the result's extra properties (count, command, columns…)
const plain = (rows) => rows.map((r) => ({ ...r }));
const rowsOf = async (sql, tag) => plain(await sql`SELECT id, val, amount FROM ${sql(T)} WHERE val LIKE ${tag + '%'} ORDER BY id`);

const checks = [
  ['connect_ddl', (val) => withSql(async (sql) => {
    val(plain(await sql`SELECT 1 AS one`));
    await sql.unsafe(`CREATE TABLE ${T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))`);
    val(plain(await sql`SELECT count(*) FROM ${sql(T)}`));
  })],
  ['point_reads', (val) => withSql(async (sql) => {
    for (const k of env.keys()) val(plain(await sql`SELECT ${sql.unsafe(USER_COLS)} FROM users WHERE id = ${k}`));
  })],
  ['point_reads_unprepared', (val) => withSql(async (sql) => {
    // prepare: false: unnamed statements, as behind PgBouncer
    for (const k of env.keys()) val(plain(await sql`SELECT ${sql.unsafe(USER_COLS)} FROM users WHERE id = ${k}`));
  }, { prepare: false })],
  ['keyless_reads', (val) => withSql(async (sql) => {
    for (const q of KEYLESS) {
      const r = await sql.unsafe(q);
      val({ columns: r.columns.map((c) => [c.name, c.type]), rows: plain(r) });
    }
  })],
  ['repeated_statement', (val) => withSql(async (sql) => {
    // postgres.js prepares a named statement once and binds it every time
    const keys = env.keys();
    for (let i = 0; i < 20; i++) val(plain(await sql`SELECT id, name, balance FROM users WHERE id = ${keys[i % keys.length]}`));
  })],
  ['insert_single', (val) => withSql(async (sql) => {
    let i = 0;
    for (const k of env.fresh(2)) {
      const r = await sql`INSERT INTO ${sql(T)} (id, val, amount) VALUES (${k}, ${'insert_single ' + i}, ${i + 0.5})`;
      if (r.count !== 1) throw new Error(`count ${r.count}`);
      i++;
    }
    val(await rowsOf(sql, 'insert_single'));
  })],
  ['insert_helper_multirow', (val) => withSql(async (sql) => {
    // sql(rows, columns): one INSERT with many VALUES rows
    const rows = env.fresh(5).map((k, i) => ({ id: k, val: `insert_helper ${i}`, amount: i * 2 }));
    const r = await sql`INSERT INTO ${sql(T)} ${sql(rows, 'id', 'val', 'amount')}`;
    val(r.count);
    val(await rowsOf(sql, 'insert_helper'));
  })],
  ['insert_pipelined', (val) => withSql(async (sql) => {
    // queries sent without waiting for each other: pipelined on one connection
    const ids = env.fresh(5);
    const rs = await Promise.all(ids.map((k, i) => sql`INSERT INTO ${sql(T)} (id, val, amount) VALUES (${k}, ${'insert_pipelined ' + i}, ${i}) RETURNING id`));
    val(rs.map(plain));
    val(await rowsOf(sql, 'insert_pipelined'));
  })],
  ['txn_commit_one_shard', (val) => withSql(async (sql) => {
    const ids = env.freshOneShard(3, 0);
    await sql.begin(async (sql) => {
      for (let i = 0; i < ids.length; i++) await sql`INSERT INTO ${sql(T)} (id, val, amount) VALUES (${ids[i]}, ${'txn_commit ' + i}, ${10 + i})`;
      await sql`UPDATE ${sql(T)} SET amount = amount + 1 WHERE id = ${ids[0]}`;
      val(plain(await sql`SELECT id, amount FROM ${sql(T)} WHERE id = ${ids[0]}`));
    });
    val(await rowsOf(sql, 'txn_commit'));
  })],
  ['txn_pipelined_in_begin', (val) => withSql(async (sql) => {
    // the documented way to pipeline inside sql.begin: return an array of queries
    const ids = env.freshOneShard(3, 1);
    const rs = await sql.begin((sql) => ids.map((k, i) => sql`INSERT INTO ${sql(T)} (id, val, amount) VALUES (${k}, ${'txn_pipelined ' + i}, ${i}) RETURNING id`));
    val(rs.map(plain));
    val(await rowsOf(sql, 'txn_pipelined'));
  })],
  ['txn_rollback_one_shard', (val) => withSql(async (sql) => {
    const ids = env.freshOneShard(3, 1);
    const rollback = new Error('rollback on purpose');
    try {
      await sql.begin(async (sql) => {
        for (let i = 0; i < ids.length; i++) await sql`INSERT INTO ${sql(T)} (id, val, amount) VALUES (${ids[i]}, ${'txn_rollback ' + i}, ${i})`;
        val(plain(await sql`SELECT count(*) FROM ${sql(T)} WHERE id = ${ids[0]}`));
        throw rollback;
      });
    } catch (e) {
      if (e !== rollback) throw e;
    }
    val(await rowsOf(sql, 'txn_rollback'));
    val(plain(await sql`SELECT count(*) FROM ${sql(T)} WHERE id = ${ids[1]}`));
  })],
  ['txn_read_both_shards', (val) => withSql(async (sql) => {
    await sql.begin(async (sql) => {
      val(plain(await sql`SELECT count(*), sum(balance) FROM users`));
      val(plain(await sql`SELECT id, name FROM users ORDER BY id LIMIT 3`));
      for (const k of [env.s0[0], env.s1[0]]) val(plain(await sql`SELECT id, name FROM users WHERE id = ${k}`));
    });
  })],
  ['txn_write_two_shards', (val) => withSql(async (sql) => {
    const [a, b] = env.fresh(1);
    let err = 'none';
    try {
      await sql.begin(async (sql) => {
        await sql`INSERT INTO ${sql(T)} (id, val) VALUES (${a}, 'txn_two a')`;
        await sql`INSERT INTO ${sql(T)} (id, val) VALUES (${b}, 'txn_two b')`;
      });
    } catch (e) {
      err = e.code || 'none';
      out(`# txn_write_two_shards: refused: [${e.code}] ${String(e.message).split("\n").join(" | ")}`);
    }
    out(`= txn_write_two_shards: error ${err}`);
    out(`= txn_write_two_shards: after rollback SELECT 1 -> ${(await sql`SELECT 1 AS x`)[0].x}`);
    out(`= txn_write_two_shards: rows left ${(await sql`SELECT count(*) AS n FROM ${sql(T)} WHERE val LIKE 'txn_two%'`)[0].n}`);
  })],
  ['cursor', (val) => withSql(async (sql) => {
    // .cursor(10): Execute with a row limit of 10 on a portal, repeated
    const got = [];
    await sql.begin(async (sql) => {
      await sql`SELECT id, user_id, total FROM orders ORDER BY id`.cursor(10, (rows) => { got.push(...plain(rows)); });
    });
    val(got.length);
    val(got);
  })],
  ['copy_in', (val) => withSql(async (sql) => {
    const ids = env.fresh(8);
    const data = ids.map((k, i) => `${k}\tcopy_in ${i}\t${i / 4}\n`).join('');
    const writable = await sql.unsafe(`COPY ${T} (id, val, amount) FROM STDIN`).writable();
    await pipeline(Readable.from([data]), writable);
    val(await rowsOf(sql, 'copy_in'));
  })],
  ['copy_out', (val) => withSql(async (sql) => {
    const read = async (q) => {
      const chunks = [];
      const readable = await sql.unsafe(q).readable();
      await pipeline(readable, new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } }));
      return Buffer.concat(chunks).toString('utf8');
    };
    val((await read('COPY (SELECT id, name, balance, tags FROM users ORDER BY id) TO STDOUT')).split('\n'));
    val((await read('COPY orders (id, user_id, total, status) TO STDOUT')).split('\n').filter(Boolean).sort());
  })],
  ['sql_prepare', (val) => withSql(async (sql) => {
    await sql.unsafe('PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1').simple();
    for (const k of env.keys()) val(plain(await sql.unsafe(`EXECUTE byid(${Number(k)})`)));
    await sql.unsafe('DEALLOCATE byid');
  })],
];

runChecks(checks).then(() => process.exit(0));
