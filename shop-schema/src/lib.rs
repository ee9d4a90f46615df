//! The shop demo: its schema and shard config arrive with the sharding issue.
