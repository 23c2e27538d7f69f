/**
 * Local state: one SQLite database (WAL) per agent, shared by every component (outbox queues,
 * file index, history, ...). Components declare their tables as versioned migrations in
 * migrations.ts; `openStore` applies the missing ones in order, each in its own transaction, so
 * a kill -9 at any moment leaves either the old or the new schema, never half of one.
 *
 * Public interface: openStore(dataDir) → Store { db, kv get/set, history, close, integrityCheck }.
 * Depends on: node:sqlite (built into Node 24).
 */
import { DatabaseSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS, type Migration } from './migrations.ts';

export interface HistoryEntry {
  id: number;
  at: number;
  component: string;
  kind: string;
  data: unknown;
}

export class Store {
  readonly db: DatabaseSync;
  readonly path: string;

  constructor(path: string, migrations: readonly Migration[] = MIGRATIONS) {
    this.path = path;
    this.db = new DatabaseSync(path);
    // WAL: readers never block the writer and a crash loses at most the uncommitted transaction.
    this.db.exec('PRAGMA journal_mode = WAL');
    // NORMAL is crash-safe for the application (kill -9); FULL would only add power-loss durability
    // of the last commits at the price of an fsync per transaction.
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec('PRAGMA foreign_keys = ON');
    this.db.exec('PRAGMA busy_timeout = 5000');
    this.#migrate(migrations);
  }

  #migrate(migrations: readonly Migration[]): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, component TEXT NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    const applied = new Set(
      (this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
    );
    const known = new Set(migrations.map((m) => m.version));
    for (const v of applied) {
      if (!known.has(v)) {
        throw new Error(`state database ${this.path} has schema version ${v}, unknown to this agent version (downgrade?)`);
      }
    }
    const record = this.db.prepare('INSERT INTO schema_migrations(version, component, name, applied_at) VALUES (?, ?, ?, ?)');
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      this.transaction(() => {
        this.db.exec(m.sql);
        record.run(m.version, m.component, m.name, Date.now());
      });
    }
  }

  /** Runs fn inside BEGIN IMMEDIATE … COMMIT; rolls back if it throws. */
  transaction<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.db.exec('COMMIT');
      return out;
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  schemaVersion(): number {
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    return row.v ?? 0;
  }

  kvGet(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  kvSet(key: string, value: string): void {
    this.db.prepare('INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  appendHistory(component: string, kind: string, data: unknown): number {
    const r = this.db
      .prepare('INSERT INTO history(at, component, kind, data) VALUES (?, ?, ?, ?)')
      .run(Date.now(), component, kind, JSON.stringify(data ?? null));
    return Number(r.lastInsertRowid);
  }

  history(opts: { component?: string; limit?: number; afterId?: number } = {}): HistoryEntry[] {
    const rows = this.db
      .prepare(
        `SELECT id, at, component, kind, data FROM history
         WHERE (? IS NULL OR component = ?) AND id > ? ORDER BY id DESC LIMIT ?`,
      )
      .all(opts.component ?? null, opts.component ?? null, opts.afterId ?? 0, opts.limit ?? 100) as {
      id: number; at: number; component: string; kind: string; data: string;
    }[];
    return rows.map((r) => ({ ...r, data: JSON.parse(r.data) as unknown }));
  }

  /** PRAGMA integrity_check: 'ok' or the problems SQLite found. */
  integrityCheck(): string {
    const rows = this.db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('; ');
  }

  close(): void {
    if (!this.db.isOpen) return;
    // Fold the WAL back into the main file so a stopped agent leaves one self-contained file.
    this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}

export function openStore(dataDir: string): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new Store(join(dataDir, 'state.db'));
}
