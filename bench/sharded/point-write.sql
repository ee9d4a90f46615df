-- Point write by random key (one statement per transaction, autocommit).
\set aid random(1, :naccounts)
\set delta random(-5000, 5000)
UPDATE accounts SET abalance = abalance + :delta WHERE aid = :aid;
