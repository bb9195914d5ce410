"""SQLite storage: objects kept as JSON text so collections are answered by joining stored strings.

One connection guarded by a re-entrant lock: uvicorn runs sync endpoints in a thread pool, and SQLite
writes are serial anyway. Transactions nest (the outermost one commits), so core helpers can be called
from inside an endpoint module's own transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '',
    id TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_key ON objects (org_id, kind, state, id);
CREATE TABLE IF NOT EXISTS counters (org_id INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (org_id, name));
CREATE TABLE IF NOT EXISTS api_keys (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, timestamp REAL NOT NULL,
    event_type TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (uuid TEXT PRIMARY KEY, org_id INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_versions (org_id INTEGER NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (org_id, version));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Store:
    def __init__(self, path: str):
        if path != ":memory:":
            # Holds API key hashes: readable by the owner only, created that way (no window).
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._depth = threading.local()
        with self.transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    # --- transactions -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            depth = getattr(self._depth, "value", 0)
            if depth:
                self._depth.value = depth + 1
                try:
                    yield self._db
                finally:
                    self._depth.value = depth
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth.value = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth.value = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- objects ------------------------------------------------------------------------------------------
    def row(self, org_id: int, kind: str, obj_id: str, state: str = "") -> sqlite3.Row | None:
        with self.transaction() as db:
            return db.execute(
                "SELECT doc, deleted FROM objects WHERE org_id=? AND kind=? AND state=? AND id=?",
                (org_id, kind, state, str(obj_id)),
            ).fetchone()

    def doc(self, org_id: int, kind: str, obj_id: str, state: str = "") -> dict | None:
        found = self.row(org_id, kind, obj_id, state)
        return json.loads(found["doc"]) if found else None

    def put(self, org_id: int, kind: str, obj_id: str, doc: dict, state: str = "", deleted: bool = False) -> None:
        self.put_many(org_id, kind, [(str(obj_id), doc, deleted)], state)

    def put_many(self, org_id: int, kind: str, items: Iterable[tuple[str, dict, bool]], state: str = "") -> None:
        """Insert or replace; a replaced object keeps its place (seq) in collection order."""
        rows = [(org_id, kind, state, obj_id, int(deleted), dumps(doc)) for obj_id, doc, deleted in items]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO objects (org_id, kind, state, id, deleted, doc) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (org_id, kind, state, id) DO UPDATE SET deleted=excluded.deleted, doc=excluded.doc",
                rows,
            )

    def remove(self, org_id: int, kind: str, obj_id: str, state: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "DELETE FROM objects WHERE org_id=? AND kind=? AND state=? AND id=?", (org_id, kind, state, str(obj_id))
            )

    def texts(self, org_id: int, kind: str, state: str = "", include_deleted: bool = False) -> list[str]:
        """Stored JSON text of every object of a kind, in creation order."""
        sql = "SELECT doc FROM objects WHERE org_id=? AND kind=? AND state=?"
        if not include_deleted:
            sql += " AND deleted=0"
        with self.transaction() as db:
            return [row[0] for row in db.execute(sql + " ORDER BY seq", (org_id, kind, state))]

    def docs(self, org_id: int, kind: str, state: str = "", include_deleted: bool = False) -> list[dict]:
        return [json.loads(text) for text in self.texts(org_id, kind, state, include_deleted)]

    def referencing(self, org_id: int, kinds: Iterable[str], state: str, href: str) -> list[dict]:
        """Live objects whose JSON mentions `href` as a whole string value (the quotes make it exact)."""
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        sql = (
            f"SELECT kind, doc FROM objects WHERE org_id=? AND state=? AND deleted=0 AND kind IN ({marks})"  # noqa: S608 - only placeholders
            " AND doc LIKE ? ESCAPE '\\'"
        )
        with self.transaction() as db:
            rows = db.execute(sql, (org_id, state, *kinds, like_pattern(json.dumps(href)))).fetchall()
        return [{"kind": row["kind"], **json.loads(row["doc"])} for row in rows]

    def find(self, org_id: int, kind: str, state: str = "", **equals: str) -> list[dict]:
        """Live objects whose top-level fields equal the given values (e.g. key="role", value="Web")."""
        sql = "SELECT doc FROM objects WHERE org_id=? AND kind=? AND state=? AND deleted=0"
        args: list = [org_id, kind, state]
        for name, value in equals.items():
            if not name.isidentifier():
                raise ValueError(f"not a field name: {name!r}")
            sql += f" AND json_extract(doc, '$.{name}') = ?"
            args.append(value)
        with self.transaction() as db:
            return [json.loads(row[0]) for row in db.execute(sql + " ORDER BY seq", args)]

    def next_id(self, org_id: int, name: str) -> int:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO counters (org_id, name, value) VALUES (?, ?, 1)"
                " ON CONFLICT (org_id, name) DO UPDATE SET value = value + 1",
                (org_id, name),
            )
            return db.execute("SELECT value FROM counters WHERE org_id=? AND name=?", (org_id, name)).fetchone()[0]

    def next_ids(self, org_id: int, name: str, count: int) -> range:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO counters (org_id, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT (org_id, name) DO UPDATE SET value = value + excluded.value",
                (org_id, name, count),
            )
            last = db.execute("SELECT value FROM counters WHERE org_id=? AND name=?", (org_id, name)).fetchone()[0]
            return range(last - count + 1, last + 1)

    # --- small key/value facts ----------------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        with self.transaction() as db:
            found = db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return found[0] if found else None

    def set_meta(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                (name, value),
            )
