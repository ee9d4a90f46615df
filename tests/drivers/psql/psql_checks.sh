#!/usr/bin/env bash
# psql and pg_dump through shardgate: see ../python/common.py for the output
# format and the environment. Each check is one psql (or pg_dump) run; its
# output lines are the check's values, its exit code and stderr say ok/FAIL.
set -uo pipefail
export PGHOST="${SG_HOST:-127.0.0.1}" PGPORT="$SG_PORT" PGUSER="${SG_USER:-shop}" \
  PGPASSWORD="${SG_PASSWORD:-shop}" PGDATABASE="${SG_DB:-shop}" PGCONNECT_TIMEOUT=10
unset PGOPTIONS PGSERVICE PGSSLMODE PGPASSFILE
PSQL="${PSQL:-psql}"
PG_DUMP="${PG_DUMP:-pg_dump}"
T="$SG_TABLE"
IFS=, read -r -a S0 <<<"$SG_S0"
IFS=, read -r -a S1 <<<"$SG_S1"
IFS=, read -r -a W0 <<<"$SG_W0"
IFS=, read -r -a W1 <<<"$SG_W1"
next=0
KEYS=()
for i in "${!S0[@]}"; do [ -n "${S1[$i]:-}" ] && KEYS+=("${S0[$i]}" "${S1[$i]}"); done
# FRESH=(n ids on s0 and n on s1, alternating); FRESH0/FRESH1: the halves
fresh() {
  FRESH=() FRESH0=() FRESH1=()
  local j
  for ((j = next; j < next + $1; j++)); do
    FRESH+=("${W0[$j]}" "${W1[$j]}")
    FRESH0+=("${W0[$j]}")
    FRESH1+=("${W1[$j]}")
  done
  next=$((next + $1))
}
USER_COLS="id, name, email, balance, created_at, profile, tags, avatar, uid"

# check NAME [psql args…] < SQL: runs psql -X -A -t with ON_ERROR_STOP and a
# 20 s timeout, prints its output lines as values, then ok or FAIL.
check() {
  local name="$1"
  shift
  echo "# start $name"
  local outf errf rc
  outf="$(mktemp)" errf="$(mktemp)"
  timeout 20 "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@" >"$outf" 2>"$errf"
  rc=$?
  emit "$name" "$outf" "$errf" "$rc"
}

# emit NAME OUT ERR RC
emit() {
  local name="$1" outf="$2" errf="$3" rc="$4"
  sed "s/^/= $name: /" "$outf"
  if [ -n "${EXPECT_ERRORS:-}" ]; then
    # the check's values say whether the errors were the right ones
    grep -E 'ERROR|FATAL' "$errf" | sed "s/^/# $name: /"
    sed -i -E '/ERROR|FATAL|^(DETAIL|HINT|WARNING|LINE|CONTEXT)|^ *\^/d' "$errf"
  fi
  if [ "$rc" = 0 ] && ! grep -q -E '^(psql|pg_dump)?:?.*(ERROR|FATAL)' "$errf"; then
    echo "ok $name"
  elif [ "$rc" = 124 ]; then
    echo "FAIL $name: no answer within 20 s (timeout killed the client); stderr: $(tr '\n' ' ' <"$errf" | cut -c1-300)"
  else
    echo "FAIL $name: exit $rc: $(grep -m1 -E 'ERROR|FATAL|error' "$errf" | cut -c1-400 || true) $(grep -m1 -E '^(DETAIL|HINT)' "$errf" || true)"
  fi
  rm -f "$outf" "$errf"
}

check connect_ddl <<SQL
SELECT 1;
CREATE TABLE $T (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2));
SELECT count(*) FROM $T;
SQL

check point_reads < <(for k in "${KEYS[@]}"; do echo "SELECT $USER_COLS FROM users WHERE id = $k;"; done)

check keyless_reads <<'SQL'
SELECT id, name FROM users ORDER BY id LIMIT 5;
SELECT id, balance FROM users ORDER BY balance DESC NULLS LAST, id LIMIT 7 OFFSET 2;
SELECT count(*), sum(balance), min(balance), max(balance), min(created_at), max(created_at) FROM users;
SELECT status, count(*), sum(total), min(total), max(total) FROM orders GROUP BY status ORDER BY status;
SELECT user_id, count(*) AS n, sum(total) FROM orders GROUP BY user_id ORDER BY sum(total) DESC, user_id LIMIT 5;
SELECT id, name, price FROM products ORDER BY id;
SELECT count(*) FROM orders WHERE total > 100;
SQL

check repeated_statement < <(for i in $(seq 0 19); do echo "SELECT id, name, balance FROM users WHERE id = ${KEYS[$((i % ${#KEYS[@]}))]};"; done)

# psql's catalog queries
check describe_table -c "\\d users"

fresh 2
check insert_single <<SQL
INSERT INTO $T (id, val, amount) VALUES (${FRESH[0]}, 'insert_single 0', 0.5);
INSERT INTO $T (id, val, amount) VALUES (${FRESH[1]}, 'insert_single 1', 1.5);
INSERT INTO $T (id, val, amount) VALUES (${FRESH[2]}, 'insert_single 2', 2.5);
INSERT INTO $T (id, val, amount) VALUES (${FRESH[3]}, 'insert_single 3', 3.5);
SELECT id, val, amount FROM $T WHERE val LIKE 'insert_single%' ORDER BY id;
SQL

fresh 5
values=""
for i in "${!FRESH[@]}"; do values+="${values:+, }(${FRESH[$i]}, 'insert_multirow $i', $((i * 2)))"; done
check insert_multirow <<SQL
INSERT INTO $T (id, val, amount) VALUES $values;
SELECT id, val, amount FROM $T WHERE val LIKE 'insert_multirow%' ORDER BY id;
SQL

fresh 3
check txn_commit_one_shard <<SQL
BEGIN;
INSERT INTO $T (id, val, amount) VALUES (${FRESH0[0]}, 'txn_commit 0', 10), (${FRESH0[1]}, 'txn_commit 1', 11);
INSERT INTO $T (id, val, amount) VALUES (${FRESH0[2]}, 'txn_commit 2', 12);
UPDATE $T SET amount = amount + 1 WHERE id = ${FRESH0[0]};
SELECT id, amount FROM $T WHERE id = ${FRESH0[0]};
COMMIT;
SELECT id, val, amount FROM $T WHERE val LIKE 'txn_commit%' ORDER BY id;
SQL

fresh 3
check txn_rollback_one_shard <<SQL
BEGIN;
INSERT INTO $T (id, val, amount) VALUES (${FRESH1[0]}, 'txn_rollback 0', 0), (${FRESH1[1]}, 'txn_rollback 1', 1);
INSERT INTO $T (id, val, amount) VALUES (${FRESH1[2]}, 'txn_rollback 2', 2);
SELECT count(*) FROM $T WHERE id = ${FRESH1[0]};
ROLLBACK;
SELECT id, val, amount FROM $T WHERE val LIKE 'txn_rollback%' ORDER BY id;
SELECT count(*) FROM $T WHERE id = ${FRESH1[1]};
SQL

check txn_read_both_shards <<SQL
BEGIN;
SELECT count(*), sum(balance) FROM users;
SELECT id, name FROM users ORDER BY id LIMIT 3;
SELECT id, name FROM users WHERE id = ${S0[0]};
SELECT id, name FROM users WHERE id = ${S1[0]};
COMMIT;
SQL

fresh 1
# ON_ERROR_STOP off: the refusal must leave the session usable
EXPECT_ERRORS=1 check txn_write_two_shards -v ON_ERROR_STOP=0 <<SQL
BEGIN;
INSERT INTO $T (id, val) VALUES (${FRESH[0]}, 'txn_two a');
INSERT INTO $T (id, val) VALUES (${FRESH[1]}, 'txn_two b');
COMMIT;
SELECT 'error ' || CASE WHEN :'LAST_ERROR_SQLSTATE' = '00000' THEN 'none' ELSE :'LAST_ERROR_SQLSTATE' END;
ROLLBACK;
SELECT 'after rollback SELECT 1 -> ' || 1;
SELECT count(*) AS rows_left FROM $T WHERE val LIKE 'txn_two%' \\gset
\\echo rows left :rows_left
SQL

# FETCH_COUNT: psql reads through a cursor (DECLARE + FETCH FORWARD 10) in a transaction
check fetch_count -v FETCH_COUNT=10 -c "SELECT id, user_id, total FROM orders ORDER BY id"

fresh 4
check copy_in <<SQL
\\copy $T (id, val, amount) FROM stdin
${FRESH[0]}	copy_in 0	0
${FRESH[1]}	copy_in 1	0.25
${FRESH[2]}	copy_in 2	0.5
${FRESH[3]}	copy_in 3	0.75
${FRESH[4]}	copy_in 4	1
${FRESH[5]}	copy_in 5	1.25
${FRESH[6]}	copy_in 6	1.5
${FRESH[7]}	copy_in 7	1.75
\\.
SELECT id, val, amount FROM $T WHERE val LIKE 'copy_in%' ORDER BY id;
SQL

check copy_out_query -c "\\copy (SELECT id, name, balance, tags FROM users ORDER BY id) TO stdout"

echo "# start copy_out_table"
outf="$(mktemp)" errf="$(mktemp)"
timeout 20 "$PSQL" -X -q -v ON_ERROR_STOP=1 -c "\\copy orders (id, user_id, total, status) TO stdout" 2>"$errf" | sort >"$outf"
emit copy_out_table "$outf" "$errf" "${PIPESTATUS[0]}"

check sql_prepare < <(
  echo "PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = \$1;"
  for k in "${KEYS[@]}"; do echo "EXECUTE byid($k);"; done
  echo "DEALLOCATE byid;"
)

# pg_dump --schema-only of the shop's tables (comments and blank lines dropped:
# they carry nothing but the versions; so are the \restrict lines of newer
# pg_dumps, whose key is random)
echo "# start pg_dump_schema"
outf="$(mktemp)" errf="$(mktemp)"
timeout 30 "$PG_DUMP" --schema-only --no-owner -t users -t orders -t products 2>"$errf" | grep -v -E '^(--|$|\\(un)?restrict )' >"$outf"
emit pg_dump_schema "$outf" "$errf" "${PIPESTATUS[0]}"
