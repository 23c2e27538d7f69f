/**
 * Keeps this member's current pool-definition document and converges with peers.
 *
 * Spreading: every member advertises a short digest `{v, h}` (version + hash prefix) of its
 * document in its gossip metadata. When a member sees a peer whose digest is newer than its own,
 * it fetches the whole document from that peer over mTLS RPC (`pools.get`), verifies it and
 * adopts it. Gossip dissemination and push/pull anti-entropy carry the digest, so the document
 * reaches every member, including ones that were away. Refused documents (unsigned, bad
 * signature, untrusted signer, older) are logged and counted, never applied.
 *
 * Public interface: PoolDefinitions (current, digest, offer, onPeerDigest, publish).
 * Depends on: state (kv), events, pooldefs/document.
 */
import type { Logger } from '../log/logger.ts';
import type { EventBus } from '../events/bus.ts';
import type { Store } from '../state/store.ts';
import { compareDocuments, documentHash, verifyDocument, type PoolDocument, type TrustedKey } from './document.ts';

const KV_KEY = 'pooldefs.document';

export interface Digest {
  v: number;
  h: string;
}

export interface PoolDefinitionsOptions {
  store: Store;
  trusted: TrustedKey[];
  logger: Logger;
  bus: EventBus;
  /** Fetches a peer's current document (RPC `pools.get`). */
  fetchFrom: (peer: string) => Promise<unknown>;
}

export class PoolDefinitions {
  readonly #o: PoolDefinitionsOptions;
  #trusted: TrustedKey[];
  #current?: PoolDocument;
  readonly #inflight = new Set<string>();
  refused = 0;

  constructor(o: PoolDefinitionsOptions) {
    this.#o = o;
    this.#trusted = o.trusted;
    const saved = o.store.kvGet(KV_KEY);
    if (saved) {
      // Re-verify what we stored: the trusted keys may have changed since.
      const v = verifyDocument(JSON.parse(saved), this.#trusted);
      if (v.ok) this.#current = v.doc;
      else o.logger.warn({ reason: v.reason }, 'stored pool document no longer verifies; ignoring it');
    }
  }

  setTrusted(keys: TrustedKey[]): void {
    this.#trusted = keys;
  }

  current(): PoolDocument | undefined {
    return this.#current;
  }

  digest(): Digest | undefined {
    return this.#current ? { v: this.#current.version, h: documentHash(this.#current).slice(0, 16) } : undefined;
  }

  /** Validates a document from `from` and adopts it when it is newer. */
  offer(input: unknown, from: string): { accepted: boolean; reason?: string } {
    const v = verifyDocument(input, this.#trusted);
    if (!v.ok) {
      this.refused++;
      this.#o.logger.warn({ from, reason: v.reason }, 'pool document refused');
      return { accepted: false, reason: v.reason };
    }
    if (this.#current && compareDocuments(v.doc, this.#current) <= 0) {
      const same = compareDocuments(v.doc, this.#current) === 0;
      if (!same) {
        this.refused++;
        this.#o.logger.info({ from, version: v.doc.version, current: this.#current.version }, 'older pool document refused');
      }
      return { accepted: false, reason: same ? 'already current' : `version ${v.doc.version} is not newer than ${this.#current.version}` };
    }
    this.#current = v.doc;
    this.#o.store.kvSet(KV_KEY, JSON.stringify(v.doc));
    this.#o.store.appendHistory('pooldefs', 'adopted', { version: v.doc.version, signer: v.doc.signer, from });
    this.#o.logger.info({ version: v.doc.version, signer: v.doc.signer, from, pools: v.doc.pools.map((p) => p.name) }, 'pool definitions updated');
    this.#o.bus.publish('pools.updated', { version: v.doc.version, signer: v.doc.signer });
    return { accepted: true };
  }

  /** Called for every peer metadata seen; fetches the document when the peer's is newer. */
  async onPeerDigest(peer: string, digest: Digest | undefined): Promise<void> {
    if (!digest || this.#inflight.has(peer)) return;
    const mine = this.digest();
    if (mine && (mine.v > digest.v || (mine.v === digest.v && mine.h >= digest.h))) return;
    this.#inflight.add(peer);
    try {
      const doc = await this.#o.fetchFrom(peer);
      this.offer(doc, peer);
    } catch (err) {
      this.#o.logger.debug({ peer, err: (err as Error).message }, 'fetching pool document failed; will retry on next digest');
    } finally {
      this.#inflight.delete(peer);
    }
  }
}
