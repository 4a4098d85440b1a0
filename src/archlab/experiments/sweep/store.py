"""SQLite results store: experiments, runs, metric curves and final metrics, queryable with plain SQL.

Schema (everything a user may load is JSON text, never pickle):

    experiments(name PK, title, spec_hash, spec_json, updated)
    runs(id PK, experiment, spec_hash, variant, seed, run_key, profile, runner, config_json, budget_json,
         n_params, status[pending|running|done|failed|interrupted], wall_time_s, versions_json, error, out_dir,
         reused_from, started, finished, host, attempts, code_hash, lr)   UNIQUE(experiment, variant, seed, run_key)
    curves(run_id, step, name, value)             one row per logged point
    finals(run_id, name, value)                   final metrics of a run
    verdicts(experiment, profile, comparison, verdict, detail_json, updated)

`host` is the machine a run executed on, `attempts` how many times it was started (a worker that died is
retried), `code_hash` the hash of the code that produced it (spec.code_hash; part of the run key), `lr` the
learning rate of an lr sweep. A file that is not a readable SQLite database is refused with one line and never
written to.

Example: `sqlite3 runs/claims/claims.sqlite "select variant, seed, name, value from runs join finals
on finals.run_id = runs.id where experiment = 'no_positional_encoding' and name = 'val_loss'"`.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archlab.config import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, title TEXT, spec_hash TEXT, spec_json TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL, spec_hash TEXT, variant TEXT NOT NULL, seed INTEGER NOT NULL,
    run_key TEXT NOT NULL, profile TEXT, runner TEXT, config_json TEXT, budget_json TEXT, n_params INTEGER,
    status TEXT NOT NULL DEFAULT 'pending', wall_time_s REAL, versions_json TEXT, error TEXT, out_dir TEXT,
    reused_from INTEGER, started REAL, finished REAL, host TEXT, attempts INTEGER, code_hash TEXT, lr REAL,
    UNIQUE(experiment, variant, seed, run_key));
CREATE INDEX IF NOT EXISTS runs_key ON runs(run_key, status);
CREATE TABLE IF NOT EXISTS curves (run_id INTEGER NOT NULL, step INTEGER, name TEXT, value REAL);
CREATE INDEX IF NOT EXISTS curves_run ON curves(run_id);
CREATE TABLE IF NOT EXISTS finals (run_id INTEGER NOT NULL, name TEXT, value REAL, PRIMARY KEY(run_id, name));
CREATE TABLE IF NOT EXISTS verdicts (
    experiment TEXT, profile TEXT, comparison TEXT, verdict TEXT, detail_json TEXT, updated REAL,
    PRIMARY KEY(experiment, profile, comparison));
"""


class Store:
    """A results database (one file; `:memory:` for throw-away comparisons)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.is_dir():
                raise ConfigError(f"results database {self.path} is a directory, not a SQLite file")
            if p.exists() and p.stat().st_size > 0:
                check_database(p)  # before anything can write to it
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"results database {self.path}: cannot create its folder ({e.strerror})") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            have = {r["name"] for r in self.db.execute("PRAGMA table_info(runs)")}
            # databases written before these columns
            for col, kind in (("host", "TEXT"), ("attempts", "INTEGER"), ("code_hash", "TEXT"), ("lr", "REAL")):
                if col not in have:
                    self.db.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
            self.db.commit()
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"results database {self.path}: {e} (left untouched)") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def put_experiment(self, name: str, title: str, spec_hash: str, spec: Mapping[str, Any]) -> None:
        """Insert or update an experiment row."""
        with self.db:
            self.db.execute(
                "INSERT INTO experiments(name, title, spec_hash, spec_json, updated) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET title=excluded.title, spec_hash=excluded.spec_hash, "
                "spec_json=excluded.spec_json, updated=excluded.updated",
                (name, title, spec_hash, json.dumps(spec, sort_keys=True, default=str), time.time()))

    def ensure_run(self, *, experiment: str, spec_hash: str, variant: str, seed: int, run_key: str, profile: str,
                   runner: str, config: Mapping[str, Any], budget: Mapping[str, Any], n_params: int | None,
                   code_hash: str | None = None, lr: float | None = None) -> int:
        """The id of the run row for (experiment, variant, seed, run_key), creating it as pending."""
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO runs(experiment, spec_hash, variant, seed, run_key, profile, runner, "
                "config_json, budget_json, n_params, status, code_hash, lr) "
                "VALUES (?,?,?,?,?,?,?,?,?,?, 'pending',?,?)",
                (experiment, spec_hash, variant, seed, run_key, profile, runner,
                 json.dumps(config, sort_keys=True), json.dumps(budget, sort_keys=True), n_params, code_hash, lr))
            row = self.db.execute("SELECT id FROM runs WHERE experiment=? AND variant=? AND seed=? AND run_key=?",
                                  (experiment, variant, seed, run_key)).fetchone()
        return int(row["id"])

    def mark_running(self, run_id: int, out_dir: str) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET status='running', started=?, out_dir=?, error=NULL WHERE id=?",
                            (time.time(), out_dir, run_id))

    def mark_interrupted(self, run_ids: Iterable[int]) -> None:
        """Runs that were executing when the sweep was interrupted (they run again on resume)."""
        with self.db:
            self.db.executemany("UPDATE runs SET status='interrupted', finished=? WHERE id=? AND status='running'",
                                [(time.time(), i) for i in run_ids])

    def finish_run(self, run_id: int, result: Mapping[str, Any], wall_time_s: float,
                   versions: Mapping[str, Any], reused_from: int | None = None, *, host: str | None = None,
                   attempts: int | None = None) -> None:
        """Store a finished run's final metrics and curve, and mark it done (one transaction)."""
        with self.db:
            self.db.execute("DELETE FROM curves WHERE run_id=?", (run_id,))
            self.db.execute("DELETE FROM finals WHERE run_id=?", (run_id,))
            self.db.executemany("INSERT INTO finals(run_id, name, value) VALUES (?,?,?)",
                                [(run_id, k, _num(v)) for k, v in (result.get("final") or {}).items()
                                 if _num(v) is not None])
            rows = []
            for point in result.get("curve") or []:
                step = int(point.get("step", 0))
                rows += [(run_id, step, k, _num(v)) for k, v in point.items() if k != "step" and _num(v) is not None]
            self.db.executemany("INSERT INTO curves(run_id, step, name, value) VALUES (?,?,?,?)", rows)
            extra: dict[str, Any] = {}
            if result.get("n_params") is not None:
                extra["n_params"] = int(result["n_params"])
            if host is not None:
                extra["host"] = host
            if attempts is not None:
                extra["attempts"] = int(attempts)
            sets = ", ".join(f"{k}=?" for k in extra)
            self.db.execute(
                "UPDATE runs SET status='done', wall_time_s=?, versions_json=?, finished=?, reused_from=?"
                + (", " + sets if sets else "") + " WHERE id=?",
                (wall_time_s, json.dumps(versions, sort_keys=True), time.time(), reused_from, *extra.values(), run_id))

    def fail_run(self, run_id: int, error: str, wall_time_s: float | None = None, *, host: str | None = None,
                 attempts: int | None = None) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET status='failed', error=?, wall_time_s=?, finished=?, host=?, attempts=? "
                            "WHERE id=?", (error[-4000:], wall_time_s, time.time(), host, attempts, run_id))

    def put_verdict(self, experiment: str, profile: str, comparison: str, verdict: str,
                    detail: Mapping[str, Any]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?)",
                            (experiment, profile, comparison, verdict, json.dumps(detail, default=str), time.time()))

    # ------------------------------------------------------------ reading

    def run(self, run_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return dict(row) if row else {}

    def done_run_with_key(self, run_key: str) -> dict[str, Any] | None:
        """Any finished run (of any experiment) with this run key: its result can be reused as is."""
        row = self.db.execute("SELECT * FROM runs WHERE run_key=? AND status='done' AND reused_from IS NULL "
                              "ORDER BY id LIMIT 1", (run_key,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT * FROM runs WHERE run_key=? AND status='done' ORDER BY id LIMIT 1",
                                  (run_key,)).fetchone()
        return dict(row) if row else None

    def finals(self, run_id: int) -> dict[str, float]:
        return {r["name"]: r["value"] for r in self.db.execute("SELECT name, value FROM finals WHERE run_id=?",
                                                               (run_id,))}

    def curve(self, run_id: int) -> list[dict[str, Any]]:
        """Logged points of a run as [{'step': s, name: value, ...}] in step order."""
        pts: dict[int, dict[str, Any]] = {}
        for r in self.db.execute("SELECT step, name, value FROM curves WHERE run_id=? ORDER BY rowid", (run_id,)):
            pts.setdefault(r["step"], {"step": r["step"]})[r["name"]] = r["value"]
        return [pts[k] for k in sorted(pts)]

    def result(self, run_id: int) -> dict[str, Any]:
        """A run's stored result in run-function form: {'final': ..., 'curve': ...}."""
        return {"final": self.finals(run_id), "curve": self.curve(run_id)}

    def runs(self, experiment: str, run_keys: Iterable[str] | None = None, status: str | None = None
             ) -> list[dict[str, Any]]:
        """Run rows of an experiment (optionally only those with the given run keys / status)."""
        q, args = "SELECT * FROM runs WHERE experiment=?", [experiment]
        if status:
            q += " AND status=?"
            args.append(status)
        rows = [dict(r) for r in self.db.execute(q + " ORDER BY id", args)]
        if run_keys is not None:
            keys = set(run_keys)
            rows = [r for r in rows if r["run_key"] in keys]
        return rows

    def experiments(self) -> list[dict[str, Any]]:
        q = "SELECT name, title, spec_hash, updated FROM experiments ORDER BY name"
        return [dict(r) for r in self.db.execute(q)]

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run any read-only SQL and return rows as dicts."""
        return [dict(r) for r in self.db.execute(sql, tuple(args))]


def check_database(path: Path) -> None:
    """Refuse (one line naming the file) a file that is not a readable SQLite database; open it read-only."""
    # read-only; without a WAL file to replay also `immutable`, so that not even -wal/-shm files are created
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "mode=ro&immutable=1"
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=60)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"results database {path} is damaged or not a SQLite file ({' '.join(str(e).split())}); "
                          "it is left untouched: "
                          "move it away or pass another --db") from None
    if [tuple(r) for r in rows] != [("ok",)]:
        first = " ".join(str(rows[0][0]).split())[:200] if rows else "no answer"  # one line
        raise ConfigError(f"results database {path} is damaged ({first}); it is left untouched: "
                          "move it away or pass another --db")


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None
