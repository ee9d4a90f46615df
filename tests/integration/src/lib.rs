//! Harness for starting real Postgres clusters in tests.
