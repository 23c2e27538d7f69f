/**
 * Owner names: file owners travel between nodes as uid/gid plus the user and group names they
 * have on the sending node, and each node maps a name to its own id — what rsync does unless
 * given --numeric-ids. A name unknown here (or no name there) leaves the number as sent.
 * SystemOwnerNames reads /etc/passwd and /etc/group (re-read when they change); users and groups
 * that only NSS modules such as LDAP or SSSD know are not in those files and keep their numbers.
 * Depends on: node:fs only.
 */
import { readFileSync, statSync } from 'node:fs';

export interface OwnerNames {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
  uidOf(user: string): number | undefined;
  gidOf(group: string): number | undefined;
}

/** Longest user/group name accepted from a peer (Linux allows 32; some systems more). */
export const MAX_OWNER_NAME = 256;

/** A name as a peer may send it: what passwd/group files can hold. */
export function validOwnerName(s: unknown): s is string {
  return typeof s === 'string' && s !== '' && Buffer.byteLength(s) <= MAX_OWNER_NAME && !/[:\n\0]/.test(s);
}

interface Table {
  byId: Map<number, string>;
  byName: Map<string, number>;
}

/** name:x:id:… lines; the first name of an id and the first id of a name win; bad lines skipped. */
export function parseIdFile(text: string): Table {
  const t: Table = { byId: new Map(), byName: new Map() };
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !validOwnerName(f[0])) continue;
    const id = /^\d{1,10}$/.test(f[2]!) ? Number(f[2]) : NaN;
    if (!Number.isSafeInteger(id) || id > 0xffff_ffff) continue;
    if (!t.byId.has(id)) t.byId.set(id, f[0]);
    if (!t.byName.has(f[0])) t.byName.set(f[0], id);
  }
  return t;
}

class IdFile {
  readonly #path: string;
  readonly #recheckMs: number;
  #table: Table = { byId: new Map(), byName: new Map() };
  #mtimeMs = -1;
  #checkedAt = -Infinity;

  constructor(path: string, recheckMs: number) {
    this.#path = path;
    this.#recheckMs = recheckMs;
  }

  get table(): Table {
    const now = Date.now();
    if (now - this.#checkedAt >= this.#recheckMs) {
      this.#checkedAt = now;
      let mtimeMs: number;
      try {
        mtimeMs = statSync(this.#path).mtimeMs;
      } catch {
        mtimeMs = -2; // missing: no names (numbers kept)
      }
      if (mtimeMs !== this.#mtimeMs) {
        this.#mtimeMs = mtimeMs;
        try {
          this.#table = parseIdFile(mtimeMs === -2 ? '' : readFileSync(this.#path, 'utf8'));
        } catch {
          this.#table = parseIdFile('');
        }
      }
    }
    return this.#table;
  }
}

export class SystemOwnerNames implements OwnerNames {
  readonly #users: IdFile;
  readonly #groups: IdFile;

  /** `recheckMs`: how often the files' mtimes are checked at most (lookups are synchronous and frequent). */
  constructor(files: { passwd?: string; group?: string; recheckMs?: number } = {}) {
    this.#users = new IdFile(files.passwd ?? '/etc/passwd', files.recheckMs ?? 5000);
    this.#groups = new IdFile(files.group ?? '/etc/group', files.recheckMs ?? 5000);
  }

  userName(uid: number): string | undefined {
    return this.#users.table.byId.get(uid);
  }

  groupName(gid: number): string | undefined {
    return this.#groups.table.byId.get(gid);
  }

  uidOf(user: string): number | undefined {
    return this.#users.table.byName.get(user);
  }

  gidOf(group: string): number | undefined {
    return this.#groups.table.byName.get(group);
  }
}
