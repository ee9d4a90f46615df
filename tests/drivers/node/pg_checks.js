// node-postgres (`pg`) through shardgate: see common.js for the output format.
'use strict';

const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('node:stream/promises');
const { Readable, Writable } = require('node:stream');
const { Env, out, runChecks, USER_COLS, KEYLESS } = require('./common');

const env = new Env();
const T = env.table;

async function withClient(fn) {
  const client = new Client({
    host: env.host, port: env.port, user: env.user, password: env.password, database: env.db,
    connectionTimeoutMillis: 10000, query_timeout: 15000,
  });
  // an error outside a query (the connection broke): reported with the check
  client.on('error', (e) => out(`# ${current}: connection error event: ${String(e.message).split('\n').join(' | ')}`));
  await client.connect();
  // remember the statement that fails, for the report
  const query = client.query.bind(client);
  client.query = (config, values) => {
    const text = typeof config === 'string' ? config : config && config.text ? config.text : config && config.constructor ? config.constructor.name : '?';
    const p = query(config, values);
    if (p && typeof p.catch === 'function' && typeof p.then === 'function') {
      return p.catch((e) => { if (e && typeof e === 'object') e.sgQuery = text; throw e; });
    }
    return p;
  };
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

const rowsOf = async (c, tag) =>
  (await c.query(`SELECT id, val, amount FROM ${T} WHERE val LIKE $1 ORDER BY id`, [tag + '%'])).rows;

let current = '';
const checks = [
  ['connect_ddl', (val) => withClient(async (c) => {
    val((await c.query('SELECT 1 AS one')).rows);
    await c.query(`CREATE TABLE ${T} (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))`);
    val((await c.query(`SELECT count(*) FROM ${T}`)).rows);
  })],
  ['point_reads', (val) => withClient(async (c) => {
    for (const k of env.keys()) val((await c.query(`SELECT ${USER_COLS} FROM users WHERE id = $1`, [k])).rows);
  })],
  ['point_reads_simple', (val) => withClient(async (c) => {
    // no parameters: the simple query protocol
    for (const k of env.keys()) val((await c.query(`SELECT ${USER_COLS} FROM users WHERE id = ${Number(k)}`)).rows);
  })],
  ['keyless_reads', (val) => withClient(async (c) => {
    for (const sql of KEYLESS) {
      const r = await c.query(sql);
      val({ fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows });
    }
  })],
  ['repeated_statement', (val) => withClient(async (c) => {
    // a named prepared statement, parsed once and bound 20 times
    const keys = env.keys();
    for (let i = 0; i < 20; i++) {
      val((await c.query({ name: 'user_by_id', text: 'SELECT id, name, balance FROM users WHERE id = $1', values: [keys[i % keys.length]] })).rows);
    }
  })],
  ['insert_single', (val) => withClient(async (c) => {
    let i = 0;
    for (const k of env.fresh(2)) {
      const r = await c.query(`INSERT INTO ${T} (id, val, amount) VALUES ($1, $2, $3)`, [k, `insert_single ${i}`, i + 0.5]);
      if (r.rowCount !== 1) throw new Error(`rowCount ${r.rowCount}`);
      i++;
    }
    val(await rowsOf(c, 'insert_single'));
  })],
  ['insert_multi_statement', (val) => withClient(async (c) => {
    // several statements in one simple query
    const sql = env.fresh(3).map((k, i) => `INSERT INTO ${T} (id, val, amount) VALUES (${k}, 'insert_multi_statement ${i}', ${i})`).join('; ');
    await c.query(sql);
    val(await rowsOf(c, 'insert_multi_statement'));
  })],
  ['insert_multirow_params', (val) => withClient(async (c) => {
    // one INSERT with many VALUES rows, bound parameters
    const ids = env.fresh(5);
    const params = [];
    const tuples = ids.map((k, i) => {
      params.push(k, `insert_multirow ${i}`, i * 2);
      return `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`;
    });
    const r = await c.query(`INSERT INTO ${T} (id, val, amount) VALUES ${tuples.join(', ')}`, params);
    val(r.rowCount);
    val(await rowsOf(c, 'insert_multirow'));
  })],
  ['insert_concurrent_queries', (val) => withClient(async (c) => {
    // queries issued without waiting: the client queues them
    const ids = env.fresh(4);
    const rs = await Promise.all(ids.map((k, i) => c.query(`INSERT INTO ${T} (id, val, amount) VALUES ($1, $2, $3) RETURNING id`, [k, `insert_concurrent ${i}`, i])));
    val(rs.map((r) => r.rows));
    val(await rowsOf(c, 'insert_concurrent'));
  })],
  ['txn_commit_one_shard', (val) => withClient(async (c) => {
    const ids = env.freshOneShard(3, 0);
    await c.query('BEGIN');
    try {
      for (let i = 0; i < ids.length; i++) await c.query(`INSERT INTO ${T} (id, val, amount) VALUES ($1, $2, $3)`, [ids[i], `txn_commit ${i}`, 10 + i]);
      await c.query(`UPDATE ${T} SET amount = amount + 1 WHERE id = $1`, [ids[0]]);
      val((await c.query(`SELECT id, amount FROM ${T} WHERE id = $1`, [ids[0]])).rows);
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK');
      throw e;
    }
    val(await rowsOf(c, 'txn_commit'));
  })],
  ['txn_rollback_one_shard', (val) => withClient(async (c) => {
    const ids = env.freshOneShard(3, 1);
    await c.query('BEGIN');
    for (let i = 0; i < ids.length; i++) await c.query(`INSERT INTO ${T} (id, val, amount) VALUES ($1, $2, $3)`, [ids[i], `txn_rollback ${i}`, i]);
    val((await c.query(`SELECT count(*) FROM ${T} WHERE id = $1`, [ids[0]])).rows);
    await c.query('ROLLBACK');
    val(await rowsOf(c, 'txn_rollback'));
    val((await c.query(`SELECT count(*) FROM ${T} WHERE id = $1`, [ids[1]])).rows);
  })],
  ['txn_read_both_shards', (val) => withClient(async (c) => {
    await c.query('BEGIN');
    val((await c.query('SELECT count(*), sum(balance) FROM users')).rows);
    val((await c.query('SELECT id, name FROM users ORDER BY id LIMIT 3')).rows);
    for (const k of [env.s0[0], env.s1[0]]) val((await c.query('SELECT id, name FROM users WHERE id = $1', [k])).rows);
    await c.query('COMMIT');
  })],
  ['txn_write_two_shards', (val) => withClient(async (c) => {
    const [a, b] = env.fresh(1);
    let err = 'none';
    await c.query('BEGIN');
    try {
      await c.query(`INSERT INTO ${T} (id, val) VALUES ($1, 'txn_two a')`, [a]);
      await c.query(`INSERT INTO ${T} (id, val) VALUES ($1, 'txn_two b')`, [b]);
      await c.query('COMMIT');
    } catch (e) {
      err = e.code || 'none';
      out(`# txn_write_two_shards: refused: [${e.code}] ${String(e.message).split("\n").join(" | ")}`);
      await c.query('ROLLBACK');
    }
    out(`= txn_write_two_shards: error ${err}`);
    out(`= txn_write_two_shards: after rollback SELECT 1 -> ${(await c.query('SELECT 1 AS x')).rows[0].x}`);
    out(`= txn_write_two_shards: rows left ${(await c.query(`SELECT count(*) AS n FROM ${T} WHERE val LIKE $1`, ['txn_two%'])).rows[0].n}`);
  })],
  ['copy_in', (val) => withClient(async (c) => {
    const ids = env.fresh(8);
    const data = ids.map((k, i) => `${k}\tcopy_in ${i}\t${i / 4}\n`).join('');
    await pipeline(Readable.from([data]), c.query(copyFrom(`COPY ${T} (id, val, amount) FROM STDIN`)));
    val(await rowsOf(c, 'copy_in'));
  })],
  ['copy_out', (val) => withClient(async (c) => {
    const read = async (sql) => {
      const chunks = [];
      await pipeline(c.query(copyTo(sql)), new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } }));
      return Buffer.concat(chunks).toString('utf8');
    };
    val((await read('COPY (SELECT id, name, balance, tags FROM users ORDER BY id) TO STDOUT')).split('\n'));
    val((await read('COPY orders (id, user_id, total, status) TO STDOUT')).split('\n').filter(Boolean).sort());
  })],
  ['sql_prepare', (val) => withClient(async (c) => {
    await c.query('PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1');
    for (const k of env.keys()) val((await c.query(`EXECUTE byid(${Number(k)})`)).rows);
    await c.query('DEALLOCATE byid');
  })],
];

runChecks(checks.map(([name, fn]) => [name, (val) => { current = name; return fn(val); }])).then(() => process.exit(0));
