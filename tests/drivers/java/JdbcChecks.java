// pgJDBC through shardgate: see ../python/common.py for the output format.
// Compiled at test time: javac -cp /usr/share/java/postgresql.jar JdbcChecks.java

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.function.Consumer;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcChecks {
    interface Check {
        void run(Consumer<String> val) throws Exception;
    }

    static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    static long[] ids(String name) {
        String v = env(name, "");
        return v.isEmpty() ? new long[0] : Arrays.stream(v.split(",")).mapToLong(Long::parseLong).toArray();
    }

    static final String URL = "jdbc:postgresql://" + env("SG_HOST", "127.0.0.1") + ":" + env("SG_PORT", "5432") + "/" + env("SG_DB", "shop");
    static final String T = env("SG_TABLE", "t_jdbc");
    static final long[] S0 = ids("SG_S0"), S1 = ids("SG_S1"), W0 = ids("SG_W0"), W1 = ids("SG_W1");
    static int next = 0;

    static long[] keys() {
        int n = Math.min(S0.length, S1.length);
        long[] out = new long[2 * n];
        for (int i = 0; i < n; i++) {
            out[2 * i] = S0[i];
            out[2 * i + 1] = S1[i];
        }
        return out;
    }

    static long[] fresh(int n) {
        int i = next;
        next += n;
        if (next > Math.min(W0.length, W1.length)) throw new IllegalStateException("out of fresh ids");
        long[] out = new long[2 * n];
        for (int j = 0; j < n; j++) {
            out[2 * j] = W0[i + j];
            out[2 * j + 1] = W1[i + j];
        }
        return out;
    }

    static long[] freshOneShard(int n, int shard) {
        long[] all = fresh(n);
        long[] out = new long[n];
        for (int j = 0; j < n; j++) out[j] = all[2 * j + shard];
        return out;
    }

    static Connection connect(Properties extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", env("SG_USER", "shop"));
        p.setProperty("password", env("SG_PASSWORD", "shop"));
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "20");
        if (extra != null) p.putAll(extra);
        return DriverManager.getConnection(URL, p);
    }

    static Connection connect() throws SQLException {
        return connect(null);
    }

    /** A value as stable text, with its Java class. */
    static String show(Object o) throws SQLException {
        if (o == null) return "null";
        if (o instanceof byte[]) {
            StringBuilder sb = new StringBuilder("bytes:");
            for (byte b : (byte[]) o) sb.append(String.format("%02x", b));
            return sb.toString();
        }
        if (o instanceof Array) {
            Object[] items = (Object[]) ((Array) o).getArray();
            List<String> parts = new ArrayList<>();
            for (Object item : items) parts.add(show(item));
            return "array:" + parts;
        }
        return o.getClass().getSimpleName() + ":" + o;
    }

    static List<String> rows(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            List<String> cols = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) cols.add(md.getColumnLabel(i) + "=" + show(rs.getObject(i)));
            out.add(String.join(", ", cols));
        }
        return out;
    }

    static List<String> query(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) ps.setObject(i + 1, params[i]);
            try (ResultSet rs = ps.executeQuery()) {
                return rows(rs);
            }
        }
    }

    static String scalar(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rs.next() ? String.valueOf(rs.getObject(1)) : "no row";
        }
    }

    static List<String> rowsOf(Connection c, String tag) throws SQLException {
        return query(c, "SELECT id, val, amount FROM " + T + " WHERE val LIKE ? ORDER BY id", tag + "%");
    }

    static void insert(Connection c, long id, String val, BigDecimal amount) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + T + " (id, val, amount) VALUES (?, ?, ?)")) {
            ps.setLong(1, id);
            ps.setString(2, val);
            ps.setBigDecimal(3, amount);
            int n = ps.executeUpdate();
            if (n != 1) throw new IllegalStateException("update count " + n);
        }
    }

    static final String USER_COLS = "id, name, email, balance, created_at, profile, tags, avatar, uid";
    static final String[] KEYLESS = {
        "SELECT id, name FROM users ORDER BY id LIMIT 5",
        "SELECT id, balance FROM users ORDER BY balance DESC NULLS LAST, id LIMIT 7 OFFSET 2",
        "SELECT count(*), sum(balance), min(balance), max(balance), min(created_at), max(created_at) FROM users",
        "SELECT status, count(*), sum(total), min(total), max(total) FROM orders GROUP BY status ORDER BY status",
        "SELECT user_id, count(*) AS n, sum(total) FROM orders GROUP BY user_id ORDER BY sum(total) DESC, user_id LIMIT 5",
        "SELECT id, name, price FROM products ORDER BY id",
        "SELECT count(*) FROM orders WHERE total > 100",
    };

    static void check(String name, Check body) {
        System.out.println("# start " + name);
        System.out.flush();
        try {
            body.run(v -> System.out.println("= " + name + ": " + v));
            System.out.println("ok " + name);
        } catch (SQLException e) {
            System.out.println("FAIL " + name + ": [" + (e.getSQLState() == null ? "no SQLSTATE" : e.getSQLState()) + "] "
                + e.getClass().getSimpleName() + ": " + oneLine(e.getMessage()) + where(e));
        } catch (Throwable e) {
            System.out.println("FAIL " + name + ": [no SQLSTATE] " + e.getClass().getSimpleName() + ": " + oneLine(String.valueOf(e.getMessage())) + where(e));
        }
        System.out.flush();
    }

    /** " (at JdbcChecks.java:LINE)": the line of this file that raised. */
    static String where(Throwable e) {
        for (StackTraceElement f : e.getStackTrace()) {
            if (f.getClassName().startsWith("JdbcChecks") && !f.getMethodName().equals("check")) {
                return " (at JdbcChecks.java:" + f.getLineNumber() + ")";
            }
        }
        return "";
    }

    static String oneLine(String s) {
        s = s == null ? "" : s.replace("\n", " | ");
        return s.length() > 400 ? s.substring(0, 400) + "…" : s;
    }

    public static void main(String[] args) {
        check("connect_ddl", val -> {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                val.accept(query(c, "SELECT 1 AS one").toString());
                st.execute("CREATE TABLE " + T + " (id bigint PRIMARY KEY, val text NOT NULL, amount numeric(10,2))");
                val.accept(query(c, "SELECT count(*) FROM " + T).toString());
            }
        });
        check("point_reads", val -> {
            try (Connection c = connect()) {
                for (long k : keys()) val.accept(query(c, "SELECT " + USER_COLS + " FROM users WHERE id = ?", k).toString());
            }
        });
        check("keyless_reads", val -> {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                for (String sql : KEYLESS) {
                    try (ResultSet rs = st.executeQuery(sql)) {
                        val.accept(rows(rs).toString());
                    }
                }
            }
        });
        check("repeated_statement", val -> {
            // prepareThreshold = 5: from the 5th execution on, a named server statement (binary results)
            try (Connection c = connect(); PreparedStatement ps = c.prepareStatement("SELECT id, name, balance, created_at FROM users WHERE id = ?")) {
                long[] keys = keys();
                for (int i = 0; i < 20; i++) {
                    ps.setLong(1, keys[i % keys.length]);
                    try (ResultSet rs = ps.executeQuery()) {
                        val.accept(rows(rs).toString());
                    }
                }
            }
        });
        check("repeated_statement_prepare_threshold_1", val -> {
            Properties p = new Properties();
            p.setProperty("prepareThreshold", "1");
            try (Connection c = connect(p); PreparedStatement ps = c.prepareStatement("SELECT id, name, balance FROM users WHERE id = ?")) {
                long[] keys = keys();
                for (int i = 0; i < 20; i++) {
                    ps.setLong(1, keys[i % keys.length]);
                    try (ResultSet rs = ps.executeQuery()) {
                        val.accept(rows(rs).toString());
                    }
                }
            }
        });
        check("insert_single", val -> {
            try (Connection c = connect()) {
                long[] ids = fresh(2);
                for (int i = 0; i < ids.length; i++) insert(c, ids[i], "insert_single " + i, new BigDecimal(i).add(new BigDecimal("0.5")));
                val.accept(rowsOf(c, "insert_single").toString());
            }
        });
        check("insert_batch", val -> {
            try (Connection c = connect(); PreparedStatement ps = c.prepareStatement("INSERT INTO " + T + " (id, val, amount) VALUES (?, ?, ?)")) {
                long[] ids = fresh(10);
                for (int i = 0; i < ids.length; i++) {
                    ps.setLong(1, ids[i]);
                    ps.setString(2, "insert_batch " + i);
                    ps.setBigDecimal(3, new BigDecimal(i * 3));
                    ps.addBatch();
                }
                val.accept(Arrays.toString(ps.executeBatch()));
                val.accept(rowsOf(c, "insert_batch ").toString());
            }
        });
        check("insert_batch_rewritten", val -> {
            // reWriteBatchedInserts: the batch becomes multi-row INSERTs with parameters
            Properties p = new Properties();
            p.setProperty("reWriteBatchedInserts", "true");
            try (Connection c = connect(p); PreparedStatement ps = c.prepareStatement("INSERT INTO " + T + " (id, val, amount) VALUES (?, ?, ?)")) {
                long[] ids = fresh(10);
                for (int i = 0; i < ids.length; i++) {
                    ps.setLong(1, ids[i]);
                    ps.setString(2, "insert_batch_rewritten " + i);
                    ps.setBigDecimal(3, new BigDecimal(i * 2));
                    ps.addBatch();
                }
                ps.executeBatch();
                val.accept(rowsOf(c, "insert_batch_rewritten").toString());
            }
        });
        check("txn_commit_one_shard", val -> {
            try (Connection c = connect()) {
                long[] ids = freshOneShard(3, 0);
                c.setAutoCommit(false);
                for (int i = 0; i < ids.length; i++) insert(c, ids[i], "txn_commit " + i, new BigDecimal(10 + i));
                try (PreparedStatement ps = c.prepareStatement("UPDATE " + T + " SET amount = amount + 1 WHERE id = ?")) {
                    ps.setLong(1, ids[0]);
                    ps.executeUpdate();
                }
                val.accept(query(c, "SELECT id, amount FROM " + T + " WHERE id = ?", ids[0]).toString());
                c.commit();
                c.setAutoCommit(true);
                val.accept(rowsOf(c, "txn_commit").toString());
            }
        });
        check("txn_rollback_one_shard", val -> {
            try (Connection c = connect()) {
                long[] ids = freshOneShard(3, 1);
                c.setAutoCommit(false);
                for (int i = 0; i < ids.length; i++) insert(c, ids[i], "txn_rollback " + i, new BigDecimal(i));
                val.accept(query(c, "SELECT count(*) FROM " + T + " WHERE id = ?", ids[0]).toString());
                c.rollback();
                c.setAutoCommit(true);
                val.accept(rowsOf(c, "txn_rollback").toString());
                val.accept(query(c, "SELECT count(*) FROM " + T + " WHERE id = ?", ids[1]).toString());
            }
        });
        check("txn_read_both_shards", val -> {
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                val.accept(query(c, "SELECT count(*), sum(balance) FROM users").toString());
                val.accept(query(c, "SELECT id, name FROM users ORDER BY id LIMIT 3").toString());
                val.accept(query(c, "SELECT id, name FROM users WHERE id = ?", S0[0]).toString());
                val.accept(query(c, "SELECT id, name FROM users WHERE id = ?", S1[0]).toString());
                c.commit();
            }
        });
        check("txn_write_two_shards", val -> {
            try (Connection c = connect()) {
                long[] ab = fresh(1);
                String err = "none";
                c.setAutoCommit(false);
                try {
                    insert(c, ab[0], "txn_two a", null);
                    insert(c, ab[1], "txn_two b", null);
                    c.commit();
                } catch (SQLException e) {
                    err = e.getSQLState() == null ? "none" : e.getSQLState();
                    System.out.println("# txn_write_two_shards: refused: [" + e.getSQLState() + "] " + oneLine(e.getMessage()));
                    c.rollback();
                }
                c.setAutoCommit(true);
                val.accept("error " + err);
                val.accept("after rollback SELECT 1 -> " + scalar(c, "SELECT 1"));
                val.accept("rows left " + scalar(c, "SELECT count(*) FROM " + T + " WHERE val LIKE 'txn_two%'"));
            }
        });
        check("fetch_size", val -> {
            // autocommit off + setFetchSize(10): a portal read 10 rows per Execute
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement("SELECT id, user_id, total FROM orders ORDER BY id")) {
                    ps.setFetchSize(10);
                    try (ResultSet rs = ps.executeQuery()) {
                        List<String> got = rows(rs);
                        val.accept("rows " + got.size());
                        val.accept(got.toString());
                    }
                }
                c.commit();
            }
        });
        check("copy_in", val -> {
            try (Connection c = connect()) {
                long[] ids = fresh(8);
                StringBuilder data = new StringBuilder();
                for (int i = 0; i < ids.length; i++) data.append(ids[i]).append("\tcopy_in ").append(i).append('\t').append(new BigDecimal(i).divide(new BigDecimal(4))).append('\n');
                CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
                val.accept("copied " + cm.copyIn("COPY " + T + " (id, val, amount) FROM STDIN", new StringReader(data.toString())));
                val.accept(rowsOf(c, "copy_in").toString());
            }
        });
        check("copy_out", val -> {
            try (Connection c = connect()) {
                CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
                StringWriter w = new StringWriter();
                val.accept("copied " + cm.copyOut("COPY (SELECT id, name, balance, tags FROM users ORDER BY id) TO STDOUT", w));
                val.accept(Arrays.asList(w.toString().split("\n", -1)).toString());
                w = new StringWriter();
                val.accept("copied " + cm.copyOut("COPY orders (id, user_id, total, status) TO STDOUT", w));
                List<String> lines = new ArrayList<>(Arrays.asList(w.toString().split("\n")));
                Collections.sort(lines);
                val.accept(lines.toString());
            }
        });
        check("sql_prepare", val -> {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                st.execute("PREPARE byid(bigint) AS SELECT id, name, balance FROM users WHERE id = $1");
                for (long k : keys()) {
                    try (ResultSet rs = st.executeQuery("EXECUTE byid(" + k + ")")) {
                        val.accept(rows(rs).toString());
                    }
                }
                st.execute("DEALLOCATE byid");
            }
        });
    }
}
