/**
 * RPC server: accepts mTLS 1.3 connections from agents of the same pool CA, identifies each peer
 * by the node name in its certificate, and dispatches requests to registered handlers — unary
 * (`handle`) or bidirectional streams (`handleStream`). Many requests share one connection.
 * `close()` is graceful: new requests are refused with `shutting_down`, in-flight ones finish.
 *
 * Depends on: security/tls.ts (TlsMaterial, options, peer identity), connection.ts, frame.ts,
 * events/bus.ts ('rpc.peer_refused'), log/logger.ts.
 */
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { EventBus } from '../events/bus.ts';
import type { Logger } from '../log/logger.ts';
import { describeTlsError, peerIdentity, serverTlsOptions, type TlsMaterial } from '../security/tls.ts';
import { Connection, RpcStream } from './connection.ts';
import { ErrorCodes, ProtocolError, RpcError } from './errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, type Message, type ReqMsg } from './frame.ts';

export interface RequestContext {
  /** Verified node name of the caller (from its certificate). */
  peer: string;
  /** Caller's address "ip:port" (one value per connection). */
  remote: string;
  method: string;
  /** Aborted when the caller cancels, times out, or disconnects. */
  signal: AbortSignal;
}

export interface StreamContext extends RequestContext {
  /** The body given to openStream(). */
  body: unknown;
}

export type Handler = (body: unknown, ctx: RequestContext) => Promise<unknown>;
export type StreamHandler = (ctx: StreamContext, stream: RpcStream) => Promise<void>;

export interface RpcServerOptions {
  tls: TlsMaterial;
  host: string;
  /** 0 = pick a free port (see listen()'s result). */
  port: number;
  logger: Logger;
  maxFrameBytes?: number;
  bus?: EventBus;
  /** Peers that do not finish the TLS handshake in time are dropped (slow-loris). Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Concurrent requests + streams per connection before `busy` (default 1024). */
  maxInFlightPerConnection?: number;
  keepaliveMs?: number;
}

interface Entry {
  kind: 'unary' | 'stream';
  abort: AbortController;
  stream?: RpcStream;
}

interface ServerConn {
  conn: Connection;
  peer: string;
  remote: string;
  inFlight: Map<number, Entry>;
}

const METHOD_RE = /^[A-Za-z0-9_.:/-]{1,128}$/;

export class RpcServer {
  readonly #opts: RpcServerOptions;
  readonly #log: Logger;
  readonly #handlers = new Map<string, Handler>();
  readonly #streamHandlers = new Map<string, StreamHandler>();
  readonly #conns = new Set<ServerConn>();
  #server: Server | undefined;
  #closing = false;
  #idle: (() => void) | undefined;

  constructor(opts: RpcServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'rpc-server' });
  }

  handle(method: string, fn: Handler): void {
    this.#register(method);
    this.#handlers.set(method, fn);
  }

  handleStream(method: string, fn: StreamHandler): void {
    this.#register(method);
    this.#streamHandlers.set(method, fn);
  }

  #register(method: string): void {
    if (!METHOD_RE.test(method)) throw new Error(`invalid RPC method name "${method}": 1-128 characters of A-Z a-z 0-9 _ . : / -`);
    if (this.#handlers.has(method) || this.#streamHandlers.has(method)) throw new Error(`RPC method "${method}" already has a handler`);
  }

  /** Open agent connections. */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Number of requests and streams being served right now. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.#conns) n += c.inFlight.size;
    return n;
  }

  listen(): Promise<{ port: number }> {
    if (this.#server) return Promise.reject(new Error('RpcServer.listen() called twice'));
    const server = createServer({ ...serverTlsOptions(this.#opts.tls), handshakeTimeout: this.#opts.handshakeTimeoutMs ?? 10_000 });
    this.#server = server;
    // The address is gone once node destroys a refused socket: note it while the TCP socket is fresh.
    const remotes = new WeakMap<object, string>();
    server.on('connection', (raw: Socket) => remotes.set(raw, `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? '?'}`));
    server.on('secureConnection', (socket: TLSSocket) => this.#accept(socket));
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const parent = (socket as unknown as { _parent?: object })._parent;
      const remote = (parent && remotes.get(parent)) ?? `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      this.#refused(remote, describeTlsError(err, socket.authorizationError));
      socket.destroy(); // a handshake timeout alone leaves the TCP connection open
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.error({ err }, 'rpc server error'));
        const port = (server.address() as AddressInfo).port;
        this.#log.info({ host: this.#opts.host, port, node: this.#opts.tls.nodeName }, 'rpc server listening');
        resolve({ port });
      });
    });
  }

  /**
   * Stop accepting, refuse new requests, wait for in-flight ones (at most `graceMs`, default
   * 30 s; after that they are cancelled), then close every connection.
   */
  async close(opts: { graceMs?: number } = {}): Promise<void> {
    if (!this.#server) return;
    const server = this.#server;
    this.#closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.inFlight > 0) {
      const grace = opts.graceMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.#idle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, grace))),
      ]);
      clearTimeout(timer);
      this.#idle = undefined;
      for (const c of this.#conns) {
        for (const [id, e] of c.inFlight) {
          e.abort.abort();
          if (e.stream) e.stream.cancel('server shutting down');
          else c.conn.trySend({ t: 'err', id, code: ErrorCodes.shuttingDown, message: 'server shut down before the request finished' });
        }
        c.inFlight.clear();
      }
    }
    for (const c of this.#conns) c.conn.close();
    await closed;
    this.#server = undefined;
  }

  #refused(remote: string, reason: string): void {
    this.#log.warn({ remote, reason }, 'rpc peer refused');
    this.#opts.bus?.publish('rpc.peer_refused', { remote, reason });
  }

  #accept(socket: TLSSocket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let peer: string;
    try {
      peer = peerIdentity(socket);
    } catch (err) {
      this.#refused(remote, (err as Error).message);
      socket.destroy();
      return;
    }
    const sc: ServerConn = {
      peer,
      remote,
      inFlight: new Map(),
      conn: undefined as unknown as Connection,
    };
    sc.conn = new Connection({
      socket,
      peer,
      logger: this.#log,
      maxFrameBytes: this.#opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      keepaliveMs: this.#opts.keepaliveMs ?? 15_000,
      onMessage: (msg, size) => this.#onMessage(sc, msg, size),
      onClose: (err) => {
        this.#conns.delete(sc);
        for (const e of sc.inFlight.values()) {
          e.abort.abort();
          e.stream?._fail(err ?? new RpcError(ErrorCodes.connectionClosed, `connection from ${peer} closed`));
        }
        sc.inFlight.clear();
        this.#checkIdle();
        this.#log.debug({ peer, remote }, 'rpc connection closed');
      },
    });
    this.#conns.add(sc);
    this.#log.debug({ peer, remote }, 'rpc connection accepted');
    // Tells the client its certificate was accepted: TLS 1.3 finishes the client's handshake
    // before the server has checked the client certificate.
    sc.conn.trySend({ t: 'hello', v: PROTOCOL_VERSION, node: this.#opts.tls.nodeName });
  }

  #onMessage(sc: ServerConn, msg: Message, size: number): void {
    switch (msg.t) {
      case 'req':
        this.#onRequest(sc, msg);
        return;
      case 'data':
        sc.inFlight.get(msg.id)?.stream?._push(msg.body, size);
        return;
      case 'end':
        sc.inFlight.get(msg.id)?.stream?._end();
        return;
      case 'cancel': {
        const e = sc.inFlight.get(msg.id);
        if (!e) return;
        e.abort.abort();
        e.stream?._fail(new RpcError(ErrorCodes.cancelled, `cancelled by ${sc.peer}`));
        return;
      }
      case 'err':
        if (msg.id === 0) this.#log.warn({ peer: sc.peer, code: msg.code, message: msg.message }, 'rpc peer reported a connection error');
        else sc.inFlight.get(msg.id)?.stream?._fail(new RpcError(msg.code, msg.message));
        return;
      default:
        throw new ProtocolError('unexpected', `a client must not send "${msg.t}" messages`);
    }
  }

  #onRequest(sc: ServerConn, req: ReqMsg): void {
    const { id, method } = req;
    if (sc.inFlight.has(id)) throw new ProtocolError('duplicate_id', `request id ${id} is already in flight`);
    const reply = (code: string, message: string): void => sc.conn.trySend({ t: 'err', id, code, message });
    if (this.#closing) return reply(ErrorCodes.shuttingDown, `${this.#opts.tls.nodeName} is shutting down`);
    if (sc.inFlight.size >= (this.#opts.maxInFlightPerConnection ?? 1024)) return reply(ErrorCodes.busy, `too many requests in flight on this connection`);
    const unary = this.#handlers.get(method);
    const streaming = this.#streamHandlers.get(method);
    const abort = new AbortController();
    const ctx: RequestContext = { peer: sc.peer, remote: sc.remote, method, signal: abort.signal };

    if (req.stream === true) {
      if (!streaming) return reply(ErrorCodes.noHandler, unary ? `method ${method} is unary: use call()` : `no stream handler for method ${method}`);
      const stream = new RpcStream(sc.conn, id, () => undefined);
      sc.inFlight.set(id, { kind: 'stream', abort, stream });
      const done = (): void => {
        stream._detach();
        if (sc.inFlight.get(id)?.stream === stream) sc.inFlight.delete(id);
        this.#checkIdle();
      };
      streaming({ ...ctx, body: req.body }, stream).then(
        () => {
          if (!abort.signal.aborted) stream.end();
          done();
        },
        (err: unknown) => {
          if (!abort.signal.aborted) sc.conn.trySend(this.#errMsg(id, method, sc.peer, err));
          done();
        },
      );
      return;
    }

    if (!unary) return reply(ErrorCodes.noHandler, streaming ? `method ${method} is a stream: use openStream()` : `no handler for method ${method}`);
    sc.inFlight.set(id, { kind: 'unary', abort });
    const finish = (msg: Message): void => {
      sc.inFlight.delete(id);
      if (!abort.signal.aborted && !sc.conn.closed) sc.conn.trySend(msg);
      this.#checkIdle();
    };
    let p: Promise<unknown>;
    try {
      p = Promise.resolve(unary(req.body, ctx));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (body) => finish({ t: 'res', id, body }),
      (err: unknown) => finish(this.#errMsg(id, method, sc.peer, err)),
    );
  }

  /** Error reply: code and message only; the stack stays in our log. */
  #errMsg(id: number, method: string, peer: string, err: unknown): Message {
    if (err instanceof RpcError) return { t: 'err', id, code: err.code, message: err.message };
    this.#log.warn({ method, peer, err }, 'rpc handler failed');
    const message = err instanceof Error ? err.message : String(err);
    return { t: 'err', id, code: ErrorCodes.internal, message };
  }

  #checkIdle(): void {
    if (this.#idle && this.inFlight === 0) this.#idle();
  }
}
