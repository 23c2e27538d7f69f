/**
 * RPC client side: a pool of mTLS connections, one per peer node name, each multiplexing any
 * number of calls and streams. Connections are opened on first use, verified (the server must
 * prove the expected node name and accept our certificate: its `hello` frame), and replaced
 * after a failure on the next call.
 *
 * Public: RpcClientPool, PeerAddress, CallOptions. Depends on: security/tls.ts, connection.ts,
 * frame.ts, errors.ts, events/bus.ts, log/logger.ts.
 */
import type { OnReadOpts } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { EventBus } from '../events/bus.ts';
import type { Logger } from '../log/logger.ts';
import { clientTlsOptions, describeTlsError, type TlsMaterial } from '../security/tls.ts';
import { Connection, ReusedReadBuffer, RpcStream } from './connection.ts';
import { ErrorCodes, ProtocolError, RpcError } from './errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, MAX_ID, PROTOCOL_VERSION, type Message } from './frame.ts';

export interface PeerAddress {
  /** Node name; the server's certificate must carry it as SAN dNSName. */
  name: string;
  host: string;
  port: number;
}

export interface CallOptions {
  /** Whole-call deadline including connecting (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RpcClientPoolOptions {
  tls: TlsMaterial;
  logger: Logger;
  bus?: EventBus;
  maxFrameBytes?: number;
  /** TCP connect + TLS handshake + hello (default 10 s). */
  handshakeTimeoutMs?: number;
  keepaliveMs?: number;
  /** Source address for outgoing connections (the node's bind address, so per-address firewall rules and partitions see the right sender). */
  localAddress?: string;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** One established connection to one peer, as seen by the client. */
class ClientConn {
  readonly conn: Connection;
  readonly address: string;
  readonly #pending = new Map<number, Pending>();
  readonly #streams = new Map<number, RpcStream>();
  #nextId = 0;

  constructor(socket: TLSSocket, reads: ReusedReadBuffer, peer: PeerAddress, opts: RpcClientPoolOptions, log: Logger, onMessage0: (msg: Message) => void, onClose: (c: ClientConn, err: RpcError | undefined) => void) {
    this.address = `${peer.host}:${peer.port}`;
    this.conn = new Connection({
      socket,
      reads,
      peer: peer.name,
      logger: log,
      maxFrameBytes: opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      keepaliveMs: opts.keepaliveMs ?? 15_000,
      onMessage: (msg, size) => {
        onMessage0(msg);
        this.#onMessage(msg, size);
      },
      onClose: (err) => {
        const e = err ?? new RpcError(ErrorCodes.connectionClosed, `connection to ${peer.name} closed`);
        for (const p of this.#pending.values()) p.reject(e);
        this.#pending.clear();
        for (const s of this.#streams.values()) s._fail(e);
        this.#streams.clear();
        onClose(this, err);
      },
    });
  }

  get busy(): number {
    return this.#pending.size + this.#streams.size;
  }

  #allocId(): number {
    for (;;) {
      this.#nextId = this.#nextId >= MAX_ID ? 1 : this.#nextId + 1;
      if (!this.#pending.has(this.#nextId) && !this.#streams.has(this.#nextId)) return this.#nextId;
    }
  }

  call(method: string, body: unknown, deadline: number, signal: AbortSignal | undefined): Promise<unknown> {
    const id = this.#allocId();
    return new Promise<unknown>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      const giveUp = (err: RpcError): void => {
        if (!this.#pending.has(id)) return;
        cleanup();
        this.conn.trySend({ t: 'cancel', id });
        reject(err);
      };
      const ms = Math.max(0, deadline - Date.now());
      const timer = setTimeout(() => giveUp(new RpcError(ErrorCodes.timeout, `rpc ${method} to ${this.conn.peer} timed out after ${ms} ms`)), ms);
      const onAbort = (): void => giveUp(new RpcError(ErrorCodes.cancelled, `rpc ${method} to ${this.conn.peer} cancelled`));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (v) => {
          cleanup();
          resolve(v);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      try {
        this.conn.send({ t: 'req', id, method, body });
      } catch (err) {
        cleanup();
        reject(err);
      }
    });
  }

  openStream(method: string, body: unknown): RpcStream {
    const id = this.#allocId();
    const stream = new RpcStream(this.conn, id, (s) => {
      if (this.#streams.get(s.id) === s) this.#streams.delete(s.id);
    });
    this.#streams.set(id, stream);
    try {
      this.conn.send({ t: 'req', id, method, body, stream: true });
    } catch (err) {
      this.#streams.delete(id);
      throw err;
    }
    return stream;
  }

  #onMessage(msg: Message, size: number): void {
    switch (msg.t) {
      case 'hello':
        return; // handled during connect; a repeat is harmless
      case 'res': {
        const p = this.#pending.get(msg.id);
        if (p) p.resolve(msg.body);
        else if (this.#streams.has(msg.id)) throw new ProtocolError('unexpected', `res for stream ${msg.id}`);
        return; // late answer to a call we gave up on
      }
      case 'err': {
        const e = new RpcError(msg.code, msg.message);
        if (msg.id === 0) {
          this.conn.destroy(e);
          return;
        }
        this.#pending.get(msg.id)?.reject(e);
        this.#streams.get(msg.id)?._fail(e);
        return;
      }
      case 'data':
        this.#streams.get(msg.id)?._push(msg.body, size);
        return;
      case 'end':
        this.#streams.get(msg.id)?._end();
        return;
      case 'cancel':
        this.#streams.get(msg.id)?._fail(new RpcError(ErrorCodes.cancelled, `stream cancelled by ${this.conn.peer}`));
        return;
      case 'req':
        // Version 1 servers never call their clients back.
        this.conn.trySend({ t: 'err', id: msg.id, code: ErrorCodes.noHandler, message: 'clients serve no methods' });
        return;
      default:
        throw new ProtocolError('unexpected', `a server must not send "${msg.t}" messages`);
    }
  }
}

export class RpcClientPool {
  readonly #opts: RpcClientPoolOptions;
  readonly #log: Logger;
  /** Live or connecting connection per peer name. */
  readonly #conns = new Map<string, Promise<ClientConn>>();
  readonly #open = new Set<ClientConn>();
  #closed = false;

  constructor(opts: RpcClientPoolOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'rpc-client' });
  }

  /** Unary call; rejects with RpcError (remote error, timeout, connection or TLS failure). */
  async call(peer: PeerAddress, method: string, body: unknown, opts: CallOptions = {}): Promise<unknown> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const c = await this.#withDeadline(this.#get(peer), deadline, () => new RpcError(ErrorCodes.timeout, `rpc ${method} to ${peer.name} timed out after ${timeoutMs} ms (still connecting)`));
    return c.call(method, body, deadline, opts.signal);
  }

  /** Open a bidirectional stream to a `handleStream` method. */
  async openStream(peer: PeerAddress, method: string, body: unknown): Promise<RpcStream> {
    const c = await this.#get(peer);
    return c.openStream(method, body);
  }

  /** Close every connection (pending calls fail with connection_closed). */
  async close(): Promise<void> {
    this.#closed = true;
    const conns = [...this.#open];
    this.#conns.clear();
    await Promise.all(
      conns.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.conn.closed) return resolve();
            c.conn.socket.once('close', () => resolve());
            c.conn.close();
          }),
      ),
    );
  }

  async #withDeadline<T>(p: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), Math.max(0, deadline - Date.now()))))]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #get(peer: PeerAddress): Promise<ClientConn> {
    if (this.#closed) throw new RpcError(ErrorCodes.connectionClosed, 'RpcClientPool is closed');
    const existing = this.#conns.get(peer.name);
    if (existing) {
      const c = await existing.catch(() => undefined);
      if (c && !c.conn.closed && c.address === `${peer.host}:${peer.port}`) return c;
      // Peer moved or connection died: retire the old one once its calls are done.
      if (c && !c.conn.closed && c.busy === 0) c.conn.close();
      if (this.#conns.get(peer.name) === existing) this.#conns.delete(peer.name);
      const again = this.#conns.get(peer.name);
      if (again) return again;
    }
    const p = this.#connect(peer);
    this.#conns.set(peer.name, p);
    p.catch(() => {
      if (this.#conns.get(peer.name) === p) this.#conns.delete(peer.name);
    });
    return p;
  }

  #refused(peer: PeerAddress, reason: string): void {
    const remote = `${peer.name}@${peer.host}:${peer.port}`;
    this.#log.warn({ remote, reason }, 'rpc peer refused');
    this.#opts.bus?.publish('rpc.peer_refused', { remote, reason });
  }

  #connect(peer: PeerAddress): Promise<ClientConn> {
    const timeoutMs = this.#opts.handshakeTimeoutMs ?? 10_000;
    return new Promise<ClientConn>((resolve, reject) => {
      let settled = false;
      let client: ClientConn | undefined;
      let secure = false;
      const local = this.#opts.localAddress;
      const reads = new ReusedReadBuffer();
      // tls.connect takes net's `onread` (Node.js ≥ 15); @types/node only declares it for net.
      const options: ConnectionOptions & { onread: OnReadOpts } = {
        host: peer.host,
        port: peer.port,
        onread: { buffer: reads.buffer, callback: reads.callback },
        ...(local && local !== '0.0.0.0' && local !== '::' ? { localAddress: local } : {}),
        ...clientTlsOptions(this.#opts.tls, peer.name),
      };
      const socket = connect(options);
      const fail = (err: RpcError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new RpcError(ErrorCodes.connectFailed, `connecting to ${peer.name} (${peer.host}:${peer.port}) timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        const reason = describeTlsError(err);
        if (!secure && (err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'ETIMEDOUT')) {
          fail(new RpcError(ErrorCodes.connectFailed, `cannot connect to ${peer.name} (${peer.host}:${peer.port}): ${reason}`));
          return;
        }
        this.#refused(peer, reason);
        fail(new RpcError(ErrorCodes.tlsRefused, `TLS with ${peer.name} (${peer.host}:${peer.port}) failed: ${reason}`));
      });
      socket.once('secureConnect', () => {
        secure = true;
        client = new ClientConn(
          socket,
          reads,
          peer,
          this.#opts,
          this.#log,
          (msg) => {
            if (settled) return;
            if (msg.t !== 'hello') {
              fail(new RpcError(ErrorCodes.protocol, `${peer.name} spoke before its hello`));
              return;
            }
            if (msg.v !== PROTOCOL_VERSION) {
              fail(new RpcError(ErrorCodes.protocol, `${peer.name} speaks RPC protocol v${msg.v}, we speak v${PROTOCOL_VERSION}`));
              return;
            }
            settled = true;
            clearTimeout(timer);
            if (this.#closed) {
              client!.conn.close();
              reject(new RpcError(ErrorCodes.connectionClosed, 'RpcClientPool is closed'));
              return;
            }
            this.#open.add(client!);
            this.#log.debug({ peer: peer.name, address: client!.address }, 'rpc connected');
            resolve(client!);
          },
          (c, err) => {
            this.#open.delete(c);
            if (!settled) {
              const why = err?.message ?? 'closed without reason';
              // TLS 1.3: our side finished before the server checked our certificate, so a
              // refusal shows up as the connection closing before the server's hello.
              const reason = `${peer.name} closed the connection during the handshake: it refused our certificate (not issued by its pool CA, or expired) or is not a MultiAll agent (${why})`;
              this.#refused(peer, reason);
              fail(new RpcError(ErrorCodes.tlsRefused, reason));
            }
          },
        );
      });
    });
  }
}
