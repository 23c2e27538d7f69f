/**
 * FileSyncService: the file sync component of one agent. Owns one TreeSync per configured tree,
 * registers the `files.*` RPC methods (docs/filesync.md, "Network protocol") and routes them to
 * the tree after decoding (protocol.ts) and checking that the calling peer (its certificate's
 * node name) is a member of the tree's pool. Public interface for the agent / CLI:
 *   new FileSyncService(host, trees); start(); stop(); status(tree?); conflicts(tree?);
 *   resync(tree); scanNow(tree); onMembersChanged()
 * Host: node name, Store (migration 100 applied), RpcServer (handle/handleStream), RpcClientPool
 * (call/openStream), members(pool), optional event bus, logger.
 * Depends on: treesync.ts, protocol.ts, rpc (RpcError, types).
 */
import type { RpcServer, StreamContext, RequestContext } from '../rpc/server.ts';
import type { RpcStream } from '../rpc/connection.ts';
import { RpcError } from '../rpc/errors.ts';
import { FileSyncError } from './errors.ts';
import type { ConflictRow } from './indexstore.ts';
import { decodeEntriesReq, decodeNotifyReq, decodeFetchReq, decodeSummaryReq } from './protocol.ts';
import { TreeSync } from './treesync.ts';
import type { TreeHost, TreeStatus } from './treesync.ts';
import type { TreeConfig } from './types.ts';

export type { Member, TreeHost, TreeStatus, PeerStatus, FilesEventSink } from './treesync.ts';

export interface FileSyncHost extends TreeHost {
  rpc: Pick<RpcServer, 'handle' | 'handleStream'>;
}

export class FileSyncService {
  readonly #host: FileSyncHost;
  readonly #trees = new Map<string, TreeSync>();
  #started = false;
  /** Requests refused as malformed, per method (peers' bad input is counted, see badRequests()). */
  readonly #bad = new Map<string, number>();

  /** Turns decoder errors into a precise RPC error for the caller, and counts them. */
  #decoded<T>(method: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof FileSyncError) throw this.#refuse(method, e);
      throw e;
    }
  }

  #refuse(method: string, e: FileSyncError): RpcError {
    this.#bad.set(method, (this.#bad.get(method) ?? 0) + 1);
    return new RpcError('bad_request', e.message);
  }

  constructor(host: FileSyncHost, trees: readonly TreeConfig[]) {
    this.#host = host;
    for (const t of trees) {
      if (this.#trees.has(t.name)) throw new Error(`tree ${JSON.stringify(t.name)} is configured twice`);
      this.#trees.set(t.name, new TreeSync(t, host));
    }
    host.rpc.handle('files.summary', (body, ctx) => {
      const req = this.#decoded('files.summary', () => decodeSummaryReq(body));
      return Promise.resolve(this.#tree(req.tree, ctx).handleSummary(ctx.peer, req.summary));
    });
    host.rpc.handle('files.entries', (body, ctx) => {
      const req = this.#decoded('files.entries', () => decodeEntriesReq(body));
      return Promise.resolve(this.#tree(req.tree, ctx).handleEntries(req));
    });
    host.rpc.handle('files.notify', (body, ctx) => {
      const req = this.#decoded('files.notify', () => decodeNotifyReq(body));
      return Promise.resolve({ accepted: this.#tree(req.tree, ctx).handleNotify(ctx.peer, req.entries) });
    });
    host.rpc.handleStream('files.fetch', async (ctx: StreamContext, stream: RpcStream) => {
      const req = this.#decoded('files.fetch', () => decodeFetchReq(ctx.body));
      const tree = this.#tree(req.tree, ctx);
      // Malformed signatures in the stream are the caller's fault, like a malformed body.
      await tree.handleFetch(req, stream).catch((e: unknown) => {
        throw e instanceof FileSyncError && e.code === 'E_WIRE' ? this.#refuse('files.fetch', e) : e;
      });
    });
  }

  #tree(name: string, ctx: RequestContext): TreeSync {
    const t = this.#trees.get(name);
    // Same answer for "no such tree" and "not your pool": a stranger learns nothing.
    if (t === undefined || !t.allowed(ctx.peer)) throw new RpcError('forbidden', `${ctx.peer} may not sync tree ${JSON.stringify(name)} with ${this.#host.node}`);
    if (!this.#started) throw new RpcError('unavailable', `file sync on ${this.#host.node} is not started`);
    return t;
  }

  #get(name: string): TreeSync {
    const t = this.#trees.get(name);
    if (t === undefined) throw new Error(`no tree ${JSON.stringify(name)} on ${this.#host.node} (trees: ${[...this.#trees.keys()].join(', ') || 'none'})`);
    return t;
  }

  async start(): Promise<void> {
    this.#started = true;
    for (const t of this.#trees.values()) await t.start();
  }

  async stop(): Promise<void> {
    this.#started = false;
    await Promise.all([...this.#trees.values()].map((t) => t.stop()));
  }

  /** Requests refused as malformed (bad_request) since start, per RPC method. */
  badRequests(): Record<string, number> {
    return Object.fromEntries(this.#bad);
  }

  status(tree?: string): TreeStatus[] {
    return tree === undefined ? [...this.#trees.values()].map((t) => t.status()) : [this.#get(tree).status()];
  }

  conflicts(tree?: string): ConflictRow[] {
    return (tree === undefined ? [...this.#trees.values()] : [this.#get(tree)]).flatMap((t) => t.conflicts());
  }

  /** Admin: clear a pause (accepting a held mass delete), re-verify every hash, full catch-up. */
  resync(tree: string): Promise<void> {
    return this.#get(tree).resync();
  }

  /** Scan now instead of waiting for the watcher or the periodic scan; returns changes found. */
  scanNow(tree: string): Promise<number> {
    return this.#get(tree).scanNow();
  }

  /** Membership changed: peers that came back get a catch-up. */
  onMembersChanged(): void {
    for (const t of this.#trees.values()) t.onMembersChanged();
  }

  /** The TreeSync of a tree (tests and diagnostics). */
  tree(name: string): TreeSync {
    return this.#get(name);
  }
}
