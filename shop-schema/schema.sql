-- The shop's schema, sent through shardgate one statement at a time.
-- Where each table lives is in shardgate.toml: DDL of a sharded or broadcast
-- table runs on every shard; a month table of orders_archive is created only
-- on the shard that owns its month.

-- Sharded: hash on id (shardgate fills a missing id with a snowflake id).
CREATE TABLE users (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_email ON users (email);

-- Broadcast: a full copy on every shard.
CREATE TABLE products (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL
);

-- Co-located with users on user_id: a user's orders live on the user's
-- shard, so the foreign key holds shard by shard.
CREATE TABLE orders (
    id bigint NOT NULL,
    user_id bigint NOT NULL REFERENCES users (id),
    total numeric(12, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);

-- Co-located with users on user_id, next to their order.
CREATE TABLE order_items (
    user_id bigint NOT NULL,
    order_id bigint NOT NULL,
    product_id bigint NOT NULL REFERENCES products (id),
    qty int NOT NULL,
    price numeric(10, 2) NOT NULL,
    PRIMARY KEY (user_id, order_id, product_id),
    FOREIGN KEY (user_id, order_id) REFERENCES orders (user_id, id)
);

-- Sharded: hash on product_id.
CREATE TABLE inventory (
    product_id bigint PRIMARY KEY REFERENCES products (id),
    stock int NOT NULL
);

-- Time-sharded by month, one table per month: this logical table exists on
-- every shard (empty, the template of the month tables); rows live in
-- orders_archive_YYYY_MM on the shard that owns the month.
CREATE TABLE orders_archive (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    total numeric(12, 2) NOT NULL,
    created_at date NOT NULL,
    PRIMARY KEY (id)
);

-- The month tables (each created on its month's shard). shardgate's SQL
-- parser reads LIKE … INCLUDING DEFAULTS but not INCLUDING ALL, so the
-- primary key is added by a second statement, routed the same way.
CREATE TABLE orders_archive_2026_01 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_01 ADD PRIMARY KEY (id);
CREATE TABLE orders_archive_2026_02 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_02 ADD PRIMARY KEY (id);
CREATE TABLE orders_archive_2026_03 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_03 ADD PRIMARY KEY (id);
CREATE TABLE orders_archive_2026_04 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_04 ADD PRIMARY KEY (id);
CREATE TABLE orders_archive_2026_05 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_05 ADD PRIMARY KEY (id);
CREATE TABLE orders_archive_2026_06 (LIKE orders_archive INCLUDING DEFAULTS);
ALTER TABLE orders_archive_2026_06 ADD PRIMARY KEY (id);
