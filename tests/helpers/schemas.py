"""The state file's schemas of earlier versions, for the tests that open such a file (no I/O)."""

# schema 1 (user_version 0): one JSON body per collector, no owner rows
SCHEMA_1 = """
CREATE TABLE snapshots (collector TEXT PRIMARY KEY, fetched_at REAL, confirmed_at REAL,
                        total INTEGER, body TEXT);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, received REAL, body BLOB);
CREATE TABLE seen (key TEXT PRIMARY KEY, expires REAL);
CREATE TABLE ledger (ts REAL);
CREATE INDEX ledger_ts ON ledger (ts);
"""
# schema 2: schema 1 and the set_aside table
SCHEMA_2 = (
    SCHEMA_1
    + """
CREATE TABLE set_aside (seq INTEGER PRIMARY KEY, kind TEXT, received REAL, body BLOB, reason TEXT,
                        at REAL);
PRAGMA user_version = 2;
"""
)
