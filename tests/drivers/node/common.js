// Shared plumbing of the Node driver scripts of shardgate's driver matrix:
// the same output format and environment as ../python/common.py.
'use strict';

const ids = (name) => (process.env[name] || '').split(',').filter(Boolean).map(Number);

class Env {
  constructor() {
    this.host = process.env.SG_HOST || '127.0.0.1';
    this.port = Number(process.env.SG_PORT);
    this.user = process.env.SG_USER || 'shop';
    this.password = process.env.SG_PASSWORD || 'shop';
    this.db = process.env.SG_DB || 'shop';
    this.table = process.env.SG_TABLE;
    this.s0 = ids('SG_S0');
    this.s1 = ids('SG_S1');
    this.w0 = ids('SG_W0');
    this.w1 = ids('SG_W1');
    this.next = 0;
  }
  keys() {
    const out = [];
    for (let i = 0; i < Math.min(this.s0.length, this.s1.length); i++) out.push(this.s0[i], this.s1[i]);
    return out;
  }
  fresh(n) {
    const i = this.next;
    this.next += n;
    if (this.next > Math.min(this.w0.length, this.w1.length)) throw new Error('out of fresh ids');
    const out = [];
    for (let j = i; j < i + n; j++) out.push(this.w0[j], this.w1[j]);
    return out;
  }
  freshOneShard(n, shard) {
    return this.fresh(n).filter((_, i) => i % 2 === shard);
  }
}

const out = (line) => process.stdout.write(line + '\n');

// A value as one stable line: Buffers as hex, Dates as ISO text, with the
// JavaScript type of scalars so that "1" and 1 differ.
function show(v) {
  return JSON.stringify(v, function (key, value) {
    const raw = this[key];
    if (Buffer.isBuffer(raw)) return { bytea: raw.toString('hex') };
    if (raw instanceof Date) return { date: raw.toISOString() };
    if (typeof raw === 'bigint') return { bigint: raw.toString() };
    return value;
  });
}

function describe(e) {
  const state = e && e.code && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : 'no SQLSTATE';
  const msg = String((e && e.message) || e).split('\n').join(' | ').slice(0, 400);
  // postgres.js puts the statement on its errors; pg_checks.js sets sgQuery
  const q = e && (e.query || e.sgQuery);
  const at = q ? ` (while running: ${String(q).replace(/\s+/g, ' ').slice(0, 120)})` : '';
  return `[${state}] ${(e && e.constructor && e.constructor.name) || 'Error'}: ${msg}${at}`;
}

// Runs checks in order; each gets `val` and must finish within `timeoutMs`.
async function runChecks(checks, timeoutMs = 20000) {
  for (const [name, fn] of checks) {
    out(`# start ${name}`);
    let timer;
    try {
      await Promise.race([
        fn((v) => out(`= ${name}: ${show(v)}`)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s (client-side timeout)`)), timeoutMs);
        }),
      ]);
      out(`ok ${name}`);
    } catch (e) {
      out(`FAIL ${name}: ${describe(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

const USER_COLS = 'id, name, email, balance, created_at, profile, tags, avatar, uid';
const KEYLESS = [
  'SELECT id, name FROM users ORDER BY id LIMIT 5',
  'SELECT id, balance FROM users ORDER BY balance DESC NULLS LAST, id LIMIT 7 OFFSET 2',
  'SELECT count(*), sum(balance), min(balance), max(balance), min(created_at), max(created_at) FROM users',
  'SELECT status, count(*), sum(total), min(total), max(total) FROM orders GROUP BY status ORDER BY status',
  'SELECT user_id, count(*) AS n, sum(total) FROM orders GROUP BY user_id ORDER BY sum(total) DESC, user_id LIMIT 5',
  'SELECT id, name, price FROM products ORDER BY id',
  'SELECT count(*) FROM orders WHERE total > 100',
];

module.exports = { Env, out, show, describe, runChecks, USER_COLS, KEYLESS };
