#!/usr/bin/env python3
"""What an FTS5 index for the portal's substring search would cost SQLite writes.

Inserts rows shaped like iocd's indicators (a WITHOUT ROWID table with the list indexes, a
36-byte tenant id, a 300-byte filler for the other columns) in transactions of 500 (the import's
batch) with WAL and synchronous=FULL, as iocd's writer runs, once without a search index and
once with a contentless FTS5 table kept by a trigger, for each tokenizer. Alternates the runs and
prints rows per second and the file size. Python's sqlite3 runs the statements, so the absolute
rates are lower than iocd's; the ratio is the point.

    python3 docs/experiments/fts5_write_cost.py [rows]
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
BATCH = 500
TENANT = "3f2b8c1e-0000-4000-8000-00000000abcd"
SEARCH_INDEXES = {
    "none": None,
    "trigram": "tokenize='trigram', detail=full",
    "words": "tokenize='unicode61', detail=none",
}


def run(kind, directory):
    path = os.path.join(directory, f"{kind}.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, n INTEGER)")
    db.execute("INSERT INTO tenants VALUES (?, 0)", (TENANT,))
    db.execute(
        "CREATE TABLE indicators (tenant_id TEXT, id INTEGER, indicator_type TEXT, "
        "value_key TEXT, action TEXT, indicator_value TEXT, created_by TEXT, title TEXT, "
        "description TEXT, creation_time INTEGER, other TEXT, PRIMARY KEY (tenant_id, id), "
        "UNIQUE (tenant_id, indicator_type, value_key, action)) WITHOUT ROWID"
    )
    for columns in ["indicator_value", "created_by", "creation_time", "action",
                    "indicator_type, title"]:
        name = columns.replace(", ", "_")
        db.execute(f"CREATE INDEX i_{name} ON indicators (tenant_id, {columns})")
    options = SEARCH_INDEXES[kind]
    if options:
        db.execute(f"CREATE VIRTUAL TABLE search USING fts5(value, title, content='', {options})")
        db.execute(
            "CREATE TRIGGER search_insert AFTER INSERT ON indicators BEGIN "
            "INSERT INTO search (rowid, value, title) VALUES ("
            "((SELECT rowid FROM tenants WHERE tenant_id = new.tenant_id) << 40) | new.id, "
            "new.indicator_value, new.title); END"
        )
    rnd = random.Random(1)
    started = time.time()
    n = 0
    while n < ROWS:
        rows = []
        for _ in range(BATCH):
            n += 1
            value = (f"{rnd.getrandbits(40):x}.sub{rnd.randrange(1000)}."
                     f"evil-domain-{rnd.getrandbits(24):x}.example")
            title = f"Campaign {rnd.randrange(500)} phishing infrastructure {rnd.getrandbits(20):x}"
            rows.append((TENANT, n, "DomainName", value, "Block", value, "app-client-id",
                         title, "description", n, "x" * 300))
        db.execute("BEGIN")
        db.executemany("INSERT INTO indicators VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
    elapsed = time.time() - started
    size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    db.close()
    return ROWS / elapsed, size


def main():
    print(f"sqlite {sqlite3.sqlite_version}, {ROWS} rows, {BATCH} per transaction")
    best = {}
    for round_ in range(2):
        for kind in SEARCH_INDEXES:
            with tempfile.TemporaryDirectory() as directory:
                rate, size = run(kind, directory)
            print(f"round {round_ + 1}: {kind:8} {rate:8.0f} rows/s {size / 1e6:6.0f} MB", flush=True)
            best[kind] = max(best.get(kind, 0), rate)
    print("\n| search index | rows/s (best of 2) | of none |")
    print("|---|---:|---:|")
    for kind, rate in best.items():
        print(f"| {kind} | {rate:.0f} | {rate / best['none']:.0%} |")


if __name__ == "__main__":
    main()
