/**
 * What Memberlist needs from a network. Bytes are opaque here: Memberlist encodes, encrypts
 * and authenticates them itself, so the UDP/TCP transport and the simulated network are thin.
 * Callback style (not promises) keeps the simulation synchronous and cheap.
 */

/**
 * A reliable request found the peer's host up but nothing listening on the port (TCP RST): the
 * member's process is gone, which the prober may act on at once (memberlist.ts, probe).
 */
export class ConnectionRefusedError extends Error {
  override name = 'ConnectionRefusedError';
}

export interface TransportHandler {
  /** An unreliable datagram arrived (from = sender "host:port" as seen by the network). */
  onPacket(from: string, data: Uint8Array): void;
  /** A reliable request arrived; call reply exactly once (or never, to let it time out). */
  onRequest(from: string, data: Uint8Array, reply: (resp: Uint8Array) => void): void;
}

export interface Transport {
  /** Start receiving; resolves once bound. */
  start(handler: TransportHandler): Promise<void>;
  /** Best-effort datagram; may be lost silently. */
  sendPacket(to: string, data: Uint8Array): void;
  /**
   * Reliable request/response (TCP in the real transport). cb receives an Error when the peer
   * is unreachable, the connection fails or timeoutMs passes; a ConnectionRefusedError when the
   * peer's host actively refused the connection.
   */
  request(to: string, data: Uint8Array, timeoutMs: number, cb: (err: Error | null, resp?: Uint8Array) => void): void;
  /** The "host:port" this transport is reachable at (after start). */
  localAddress(): string;
  close(): Promise<void>;
}
