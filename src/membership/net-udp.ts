/**
 * Real network transport: UDP datagrams for probes and gossip, TCP for reliable requests
 * (push/pull, join, fallback ping), both on the same port like memberlist. TCP frames are
 * u32be length + payload, one request and one response per connection. Payload bytes are
 * already encrypted by Memberlist when a keyring is set, so TCP is "plain TCP, encrypted
 * payload" with the same keys as UDP.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { formatAddr, parseAddr } from './addr.ts';
import { LIMITS } from './messages.ts';
import { ENCRYPTION_OVERHEAD } from './keyring.ts';
import { ConnectionRefusedError, type Transport, type TransportHandler } from './transport.ts';

export interface UdpTransportOptions {
  bindAddr: string;
  /** 0 = pick a free port (the same one is used for UDP and TCP). */
  port: number;
  advertiseAddr?: string | undefined;
  /** Server side: max time a peer may take to send its request. */
  tcpTimeout?: number;
}

const MAX_FRAME = LIMITS.stream + ENCRYPTION_OVERHEAD + 64;

export class TransportError extends Error {
  override name = 'TransportError';
}

/** Reads exactly one length-prefixed frame from a socket. */
function readFrame(sock: net.Socket, cb: (err: Error | null, data?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let have = 0;
  let need = -1;
  let finished = false;
  const done = (err: Error | null, data?: Buffer): void => {
    if (finished) return;
    finished = true;
    sock.off('data', onData);
    sock.off('end', onEnd);
    sock.off('error', onErr);
    cb(err, data);
  };
  const onData = (c: Buffer): void => {
    chunks.push(c);
    have += c.length;
    if (need < 0 && have >= 4) {
      const head = Buffer.concat(chunks);
      need = head.readUInt32BE(0);
      if (need > MAX_FRAME) return done(new TransportError(`frame of ${need} bytes exceeds limit ${MAX_FRAME}`));
    }
    if (need >= 0 && have >= 4 + need) {
      const all = Buffer.concat(chunks);
      done(null, all.subarray(4, 4 + need));
    }
  };
  const onEnd = (): void => done(new TransportError('connection closed before a full frame'));
  const onErr = (e: Error): void => done(e);
  sock.on('data', onData);
  sock.on('end', onEnd);
  sock.on('error', onErr);
}

function writeFrame(sock: net.Socket, data: Uint8Array): void {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(data.length, 0);
  sock.write(head);
  sock.end(data);
}

function defaultAdvertise(bind: string): string {
  if (bind !== '0.0.0.0' && bind !== '::') return bind;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (!i.internal && i.family === 'IPv4') return i.address;
  }
  return '127.0.0.1';
}

export class UdpTransport implements Transport {
  readonly #opts: UdpTransportOptions;
  #udp: dgram.Socket | null = null;
  #pendingSends = 0;
  #drained: (() => void) | undefined;
  #tcp: net.Server | null = null;
  #port = 0;
  #handler: TransportHandler | null = null;
  readonly #open = new Set<net.Socket>();

  constructor(opts: UdpTransportOptions) {
    this.#opts = opts;
  }

  async start(handler: TransportHandler): Promise<void> {
    this.#handler = handler;
    const v6 = net.isIP(this.#opts.bindAddr) === 6;
    // Port 0: take the kernel's UDP port and try to get the same TCP port (retry on collision).
    for (let attempt = 0; ; attempt++) {
      const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4' });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(this.#opts.port, this.#opts.bindAddr, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = net.createServer((sock) => this.#onConn(sock));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, this.#opts.bindAddr, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        udp.close();
        if (this.#opts.port === 0 && attempt < 10) continue;
        throw new TransportError(`cannot listen on TCP ${formatAddr(this.#opts.bindAddr, port)}: ${(e as Error).message}`);
      }
      udp.on('message', (msg, rinfo) => this.#handler?.onPacket(formatAddr(rinfo.address, rinfo.port), msg));
      udp.on('error', () => undefined); // ICMP errors etc.: UDP is best-effort
      this.#udp = udp;
      this.#tcp = tcp;
      this.#port = port;
      return;
    }
  }

  localAddress(): string {
    return formatAddr(this.#opts.advertiseAddr ?? defaultAdvertise(this.#opts.bindAddr), this.#port);
  }

  sendPacket(to: string, data: Uint8Array): void {
    if (!this.#udp) return;
    let hp;
    try {
      hp = parseAddr(to);
    } catch {
      return;
    }
    this.#pendingSends++;
    this.#udp.send(data, hp.port, hp.host, () => {
      if (--this.#pendingSends === 0) this.#drained?.();
    });
  }

  request(to: string, data: Uint8Array, timeoutMs: number, cb: (err: Error | null, resp?: Uint8Array) => void): void {
    let hp;
    try {
      hp = parseAddr(to);
    } catch (e) {
      return cb(e as Error);
    }
    let finished = false;
    // Send from our bind address (not the kernel's pick) so the peer and any firewall rule see who we are.
    const bind = this.#opts.bindAddr;
    const sock = net.connect({ host: hp.host, port: hp.port, ...(bind !== '0.0.0.0' && bind !== '::' ? { localAddress: bind } : {}) });
    this.#open.add(sock);
    const done = (err: Error | null, resp?: Uint8Array): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this.#open.delete(sock);
      sock.destroy();
      cb(err, resp);
    };
    const timer = setTimeout(() => done(new TransportError(`request to ${to} timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const msg = `request to ${to}: ${e.message}`;
      done(e.code === 'ECONNREFUSED' ? new ConnectionRefusedError(msg) : new TransportError(msg));
    });
    sock.once('connect', () => {
      writeFrame(sock, data);
      readFrame(sock, (err, resp) => done(err, resp));
    });
  }

  #onConn(sock: net.Socket): void {
    this.#open.add(sock);
    sock.on('close', () => this.#open.delete(sock));
    sock.on('error', () => undefined);
    sock.setTimeout(this.#opts.tcpTimeout ?? 10_000, () => sock.destroy());
    const from = formatAddr(sock.remoteAddress ?? '?', sock.remotePort ?? 0);
    readFrame(sock, (err, data) => {
      if (err || !data) return sock.destroy();
      let replied = false;
      this.#handler?.onRequest(from, data, (resp) => {
        if (replied || sock.destroyed) return;
        replied = true;
        writeFrame(sock, resp);
      });
    });
  }

  async close(): Promise<void> {
    // Sends are asynchronous: closing the socket first would drop the last packets, such as a
    // graceful leave announced just before shutdown. Wait for them (bounded).
    if (this.#pendingSends > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.#drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#drained = undefined;
    }
    for (const s of this.#open) s.destroy();
    this.#open.clear();
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = null;
    this.#tcp = null;
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }
}
