/**
 * The storage schema, as an append-only list of migrations. Never edit an applied migration:
 * add a new one with the next version number. docs/storage.md describes every table.
 */
import { FILESYNC_MIGRATIONS } from '../filesync/migration.ts';

export interface Migration {
  version: number;
  component: string;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    component: 'state',
    name: 'kv and history',
    sql: `
      CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        component TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX history_component ON history(component, id);
    `,
  },
  {
    version: 2,
    component: 'state',
    name: 'outbox queue',
    // Store-and-forward queue shared by components that owe peers something (DB changes, file
    // notifications): a row is deleted only once the peer acknowledged it.
    sql: `
      CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        component TEXT NOT NULL,
        peer TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        payload BLOB NOT NULL
      );
      CREATE INDEX outbox_peer ON outbox(component, peer, id);
    `,
  },
  ...FILESYNC_MIGRATIONS,
];
