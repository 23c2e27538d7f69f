/**
 * Durable term/vote state. StorePersistence keeps one kv row per service in the agent's SQLite
 * store (`failover/<pool>/<service>` → JSON); a kv write is one committed statement, so when save()
 * returns the vote is on disk (WAL) and a kill -9 right after answering cannot forget it.
 * MemoryPersistence is for simulations (survives a simulated restart, not a real one).
 *
 * Public interface: StorePersistence, MemoryPersistence, storeHistorySink.
 * Depends on: ../state/store.ts (type only: kvGet/kvSet/appendHistory), ./types.ts.
 */
import type { Store } from '../state/store.ts';
import type { FailoverPersistence, HistorySink, PersistedServiceState } from './types.ts';

function key(pool: string, service: string): string {
  return `failover/${pool}/${service}`;
}

function decode(raw: string, where: string): PersistedServiceState {
  let v: unknown;
  try { v = JSON.parse(raw); } catch { throw new Error(`corrupt failover state in ${where}: not JSON`); }
  const o = v as Partial<PersistedServiceState> | null;
  if (o === null || typeof o !== 'object' || !Number.isSafeInteger(o.term) || (o.term as number) < 0
    || !(o.votedFor === null || typeof o.votedFor === 'string') || (o.lastRole !== 'master' && o.lastRole !== 'other')) {
    // Refuse to guess: a wrong term or vote could let this node vote twice in one term.
    throw new Error(`corrupt failover state in ${where}: ${raw.slice(0, 200)}`);
  }
  return { term: o.term as number, votedFor: o.votedFor, lastRole: o.lastRole };
}

export class StorePersistence implements FailoverPersistence {
  readonly #store: Pick<Store, 'kvGet' | 'kvSet'>;

  constructor(store: Pick<Store, 'kvGet' | 'kvSet'>) {
    this.#store = store;
  }

  load(pool: string, service: string): PersistedServiceState | undefined {
    const raw = this.#store.kvGet(key(pool, service));
    return raw === undefined ? undefined : decode(raw, `kv ${key(pool, service)}`);
  }

  save(pool: string, service: string, state: PersistedServiceState): void {
    this.#store.kvSet(key(pool, service), JSON.stringify(state));
  }
}

export class MemoryPersistence implements FailoverPersistence {
  readonly #map = new Map<string, PersistedServiceState>();

  load(pool: string, service: string): PersistedServiceState | undefined {
    const s = this.#map.get(key(pool, service));
    return s === undefined ? undefined : { ...s };
  }

  save(pool: string, service: string, state: PersistedServiceState): void {
    this.#map.set(key(pool, service), { ...state });
  }
}

/** History sink writing to the store's history table under component 'failover'. */
export function storeHistorySink(store: Pick<Store, 'appendHistory'>): HistorySink {
  return { append: (kind, data) => { store.appendHistory('failover', kind, data); } };
}
