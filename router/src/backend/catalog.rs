//! Reading table definitions from a server's catalog, outside the data
//! path: the column order of tables (for INSERTs without a column list).

use std::collections::HashMap;

use tokio_postgres::NoTls;

use super::pool::Server;

/// Why a catalog read failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Connecting or querying failed.
    #[error("server {addr}: reading the catalog: {source}")]
    Postgres {
        /// The server.
        addr: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// Connecting did not finish in time.
    #[error("server {0}: reading the catalog: timed out")]
    Timeout(String),
}

/// The columns of each of `tables` that exists on the server (resolved by
/// the backend user's `search_path`, like an unqualified name in a
/// statement), in `attnum` order, dropped columns left out.
const COLUMNS_SQL: &str = "SELECT t, a.attname::text \
     FROM unnest($1::text[]) AS t \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(t)) \
     WHERE a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY t, a.attnum";

impl Server {
    /// The column names of `tables`, in order, over a connection of its
    /// own (not from the pool); tables that do not exist are absent.
    pub async fn table_columns(
        &self,
        tables: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CatalogError> {
        let addr = self.addr.to_string();
        let err = |source| CatalogError::Postgres {
            addr: addr.clone(),
            source,
        };
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.addr.host)
            .port(self.addr.port)
            .user(&self.login.user)
            .dbname(&self.login.database)
            .application_name("shardgate catalog")
            .connect_timeout(self.timeout);
        if let Some(p) = &self.login.password {
            cfg.password(p);
        }
        let connect = tokio::time::timeout(self.timeout, cfg.connect(NoTls));
        let (client, connection) = connect
            .await
            .map_err(|_| CatalogError::Timeout(addr.clone()))?
            .map_err(err)?;
        let conn = tokio::spawn(connection);
        let rows = client.query(COLUMNS_SQL, &[&tables]).await;
        drop(client);
        let _ = conn.await;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in rows.map_err(err)? {
            let table: String = row.try_get(0).map_err(err)?;
            let column: String = row.try_get(1).map_err(err)?;
            out.entry(table).or_default().push(column);
        }
        Ok(out)
    }
}
