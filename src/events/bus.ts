/**
 * The in-process event stream between components. Components publish typed events here and
 * subscribe to the kinds they care about; nobody reaches into another component's internals.
 * The local API streams the same events to clients (GET /v1/events).
 */
import { EventEmitter } from 'node:events';
import type { FailoverEventMap } from '../failover/types.ts';

/** Every event kind and its payload. Components add their kinds here. */
/** Events of the file sync component (src/filesync/treesync.ts). */
export interface FilesEventMap {
  'files.conflict': { tree: string; path: string; copy: string; winner: string; loser: string };
  'files.synced': { tree: string; peer: string; applied: number; failed: number };
  'files.paused': { tree: string; reason: string };
  'files.resumed': { tree: string };
  /** A one-way receiver undid local changes (paths: up to 100 of them). */
  'files.reverted': { tree: string; removed: number; restored: number; failed: number; paths: string[] };
  'files.post_sync': { tree: string; command: string; exitCode: number | null; signal: string | null; durationMs: number; output: string };
}

export interface EventMap extends FailoverEventMap, FilesEventMap {
  'agent.started': { node: string };
  'agent.stopping': { node: string; reason: string };
  'config.reloaded': { node: string; file: string };
  'config.reload_refused': { node: string; file: string; problems: number };
  'rpc.peer_refused': { remote: string; reason: string };
  'member.joined': { name: string; address: string; meta: Record<string, unknown> };
  'member.updated': { name: string; meta: Record<string, unknown> };
  'member.suspect': { name: string; incarnation: number; by: string };
  'member.alive': { name: string; incarnation: number };
  'member.failed': { name: string; incarnation: number };
  'member.left': { name: string };
  'member.reaped': { name: string };
  'member.maintenance': { name: string; on: boolean; reason?: string };
  /** An application message gossiped to every member (Memberlist.sendUserMessage); data is the sender's value. */
  'member.message': { from: string; topic: string; data: unknown };
  'pools.updated': { version: number; signer: string };
  'health.changed': { node: string; status: string; previous: string; check?: string };
}

export type EventKind = keyof EventMap;

export interface BusEvent<K extends EventKind = EventKind> {
  kind: K;
  at: number; // ms since epoch
  data: EventMap[K];
}

export class EventBus {
  readonly #emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    // Many API clients may stream events at once.
    this.#emitter.setMaxListeners(0);
  }

  publish<K extends EventKind>(kind: K, data: EventMap[K]): void {
    const ev: BusEvent<K> = { kind, at: Date.now(), data };
    this.#emitter.emit(kind, ev);
    this.#emitter.emit('*', ev);
  }

  /** Subscribe to one kind; returns the unsubscribe function. */
  on<K extends EventKind>(kind: K, fn: (ev: BusEvent<K>) => void): () => void {
    this.#emitter.on(kind, fn);
    return () => this.#emitter.off(kind, fn);
  }

  /** Subscribe to every event; returns the unsubscribe function. */
  onAny(fn: (ev: BusEvent) => void): () => void {
    this.#emitter.on('*', fn);
    return () => this.#emitter.off('*', fn);
  }
}
