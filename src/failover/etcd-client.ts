/**
 * The etcd operations the etcd election backend needs (etcd-election.ts), on top of the `etcd3`
 * client (etcd v3 API over gRPC, pure JS). The client is loaded on first use (`import('etcd3')`,
 * ~170 ms of gRPC/protobuf loading), so agents that use only the builtin election never load it.
 *
 * Every call has a deadline (gRPC deadline and a local timer): the election must learn quickly
 * that etcd is unreachable, whatever the client's retry policy does.
 *
 * Operations: grant / keepAliveOnce / revoke a lease; createIfAbsent (the election recipe's
 * transaction: create the key bound to a lease only if it does not exist); deleteIfCreatedAt
 * (resign: delete the key only if it is still the one this node created, optionally writing a
 * handover key in the same transaction); getPrefix; watchPrefix (put/delete events with their
 * revisions; the client reconnects the watch by itself).
 *
 * Public interface: EtcdConnection, EtcdKv, EtcdEvent.
 * Depends on: etcd3 (loaded lazily), node:fs, ./types.ts.
 */
import { readFileSync } from 'node:fs';
import type { Etcd3, IOptions, IKeyValue, Watcher } from 'etcd3';
import type { EtcdBackendSettings } from './types.ts';

export interface EtcdKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** Lease ID ('0' = none). */
  lease: string;
}

/**
 * Watch events. `changes` carries every change of one watch response in order: the changes of
 * one transaction (same revision) arrive together, so a reader never sees half a transaction.
 */
export type EtcdEvent =
  | { type: 'changes'; changes: { key: string; kv: EtcdKv | null; revision: number }[] }
  | { type: 'connected' }
  | { type: 'disconnected'; error: string };

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

function constantBackoff(ms: number): WatchBackoff {
  const b: WatchBackoff = { duration: ms, next: () => b };
  return b;
}

function toKv(kv: IKeyValue): EtcdKv {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    lease: String(kv.lease),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`etcd ${what}: no answer within ${Math.round(ms)}ms`)), Math.max(1, ms));
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export class EtcdConnection {
  readonly settings: EtcdBackendSettings;
  #client: Promise<Etcd3> | null = null;
  #closed = false;

  constructor(settings: EtcdBackendSettings) {
    this.settings = settings;
  }

  /** The etcd3 client, created on first use. TLS files are read here (errors name the file). */
  client(): Promise<Etcd3> {
    if (this.#closed) return Promise.reject(new Error('etcd connection closed'));
    this.#client ??= (async () => {
      const { Etcd3: Client } = await import('etcd3');
      const tls = this.settings.tls;
      const read = (what: string, path: string): Buffer => {
        try { return readFileSync(path); } catch (e) { throw new Error(`etcd tls.${what}: cannot read ${path}: ${(e as Error).message}`, { cause: e }); }
      };
      return new Client({
        hosts: [...this.settings.endpoints],
        dialTimeout: this.settings.leaseTtlMs,
        ...(tls === null ? {} : {
          credentials: {
            rootCertificate: read('ca', tls.ca),
            ...(tls.cert !== null && tls.key !== null ? { certChain: read('cert', tls.cert), privateKey: read('key', tls.key) } : {}),
          },
        }),
        // Reconnect a broken watch quickly: the master key's state is what the election runs on.
        faultHandling: { watchBackoff: constantBackoff(Math.min(1000, this.settings.leaseTtlMs / 3)) },
      });
    })();
    return this.#client;
  }

  #deadline(ms: number): { deadline: Date } {
    return { deadline: new Date(Date.now() + Math.max(1, ms)) };
  }

  /** Grants a lease of `ttlMs` (rounded up to whole seconds). Returns its ID and granted TTL. */
  async grant(ttlMs: number, timeoutMs: number): Promise<{ id: string; ttlMs: number }> {
    const c = await this.client();
    const r = await withTimeout(c.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }, this.#deadline(timeoutMs)), timeoutMs, 'lease grant');
    if (r.error) throw new Error(`etcd lease grant: ${r.error}`);
    return { id: String(r.ID), ttlMs: Number(r.TTL) * 1000 };
  }

  /** One keepalive. Resolves with the lease's new TTL in ms; 0 = the lease is gone (expired or revoked). */
  async keepAliveOnce(id: string, timeoutMs: number): Promise<number> {
    const c = await this.client();
    const run = async (): Promise<number> => {
      const stream = await c.leaseClient.leaseKeepAlive(this.#deadline(timeoutMs));
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('keepalive stream ended without an answer')));
          stream.write({ ID: id });
        });
        return Math.max(0, Number(res.TTL)) * 1000;
      } finally {
        stream.on('error', () => { /* late errors of a finished call */ });
        stream.end();
      }
    };
    return withTimeout(run(), timeoutMs, 'lease keepalive');
  }

  /** Revokes a lease (its keys are deleted). A lease that is already gone counts as revoked. */
  async revoke(id: string, timeoutMs: number): Promise<void> {
    const c = await this.client();
    try {
      await withTimeout(c.leaseClient.leaseRevoke({ ID: id }, this.#deadline(timeoutMs)), timeoutMs, 'lease revoke');
    } catch (e) {
      if (/not found/i.test((e as Error).message)) return;
      throw e;
    }
  }

  /**
   * The election transaction: if `key` does not exist, create it with `value` bound to lease
   * `leaseId` (and delete `alsoDelete`); else read it. `revision` is the transaction's revision:
   * when created, the key's create revision (the fencing token).
   */
  async createIfAbsent(key: string, value: string, leaseId: string, alsoDelete: readonly string[], timeoutMs: number): Promise<{ created: boolean; revision: number; current: EtcdKv | null }> {
    const c = await this.client();
    const r = await withTimeout(
      c.if(key, 'Create', '==', 0)
        .then(c.put(key).value(value).lease(leaseId), ...alsoDelete.map((k) => c.delete().key(k)))
        .else(c.get(key))
        .options(this.#deadline(timeoutMs))
        .commit(),
      timeoutMs, 'campaign transaction');
    const kv = r.succeeded ? undefined : r.responses[0]?.response_range?.kvs?.[0];
    return { created: r.succeeded, revision: Number(r.header.revision), current: kv === undefined ? null : toKv(kv) };
  }

  /**
   * Deletes `key` only if its create revision is still `createRevision` (this node's own key);
   * in the same transaction, optionally puts `put` (bound to `put.leaseId`). Returns whether it
   * was deleted, and the transaction's revision.
   */
  async deleteIfCreatedAt(key: string, createRevision: number, timeoutMs: number, put?: { key: string; value: string; leaseId: string }): Promise<{ deleted: boolean; revision: number }> {
    const c = await this.client();
    const ops = [c.delete().key(key), ...(put === undefined ? [] : [c.put(put.key).value(put.value).lease(put.leaseId)])];
    const r = await withTimeout(c.if(key, 'Create', '==', createRevision).then(...ops).options(this.#deadline(timeoutMs)).commit(), timeoutMs, 'resign transaction');
    return { deleted: r.succeeded, revision: Number(r.header.revision) };
  }

  /** Every key under `prefix`, and the revision the read saw. */
  async getPrefix(prefix: string, timeoutMs: number): Promise<{ revision: number; kvs: EtcdKv[] }> {
    const c = await this.client();
    const r = await withTimeout(c.getAll().prefix(prefix).options(this.#deadline(timeoutMs)).exec(), timeoutMs, 'read');
    return { revision: Number(r.header.revision), kvs: r.kvs.map(toKv) };
  }

  /** Watches `prefix`; the etcd3 client reconnects the watch by itself after errors. */
  async watchPrefix(prefix: string, onEvent: (e: EtcdEvent) => void): Promise<Watcher> {
    const c = await this.client();
    const w = await c.watch().prefix(prefix).create();
    w.on('data', (res) => {
      const changes = (res.events ?? []).map((ev) => ({
        key: ev.kv.key.toString('utf8'),
        kv: ev.type === 'Put' ? toKv(ev.kv) : null,
        revision: Number(ev.kv.mod_revision),
      }));
      if (changes.length > 0) onEvent({ type: 'changes', changes });
    });
    w.on('connected', () => onEvent({ type: 'connected' }));
    w.on('disconnected', (err) => onEvent({ type: 'disconnected', error: err.message }));
    w.on('error', (err) => onEvent({ type: 'disconnected', error: err.message }));
    return w;
  }

  /** Closes the client (gRPC channels). */
  async close(): Promise<void> {
    this.#closed = true;
    const c = this.#client;
    this.#client = null;
    if (c !== null) (await c.catch(() => null))?.close();
  }
}
