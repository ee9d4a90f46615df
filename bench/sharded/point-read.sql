-- Point read by random key (one statement per transaction).
\set aid random(1, :naccounts)
SELECT abalance FROM accounts WHERE aid = :aid;
