/**
 * Error types of the RPC component. RpcError travels over the wire (code + message, never a
 * stack); ProtocolError means the peer sent something that is not this protocol, which ends
 * the connection.
 */

/** Error codes carried in `err` frames (see docs/rpc-protocol.md). */
export const ErrorCodes = {
  /** No handler registered for the method (or a unary call to a stream method and vice versa). */
  noHandler: 'no_handler',
  /** The handler threw something that was not an RpcError. */
  internal: 'internal',
  /** The caller gave up waiting. */
  timeout: 'timeout',
  /** The other side cancelled the request or stream. */
  cancelled: 'cancelled',
  /** The connection ended before the reply. */
  connectionClosed: 'connection_closed',
  /** The server is closing and takes no new requests. */
  shuttingDown: 'shutting_down',
  /** Too many requests in flight on one connection. */
  busy: 'busy',
  /** A message would exceed the frame size limit. */
  tooLarge: 'too_large',
  /** The peer violated the framing or message rules. */
  protocol: 'protocol_error',
  /** TCP connect failed. */
  connectFailed: 'connect_failed',
  /** The TLS handshake failed or the peer refused our certificate. */
  tlsRefused: 'tls_refused',
} as const;

export class RpcError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
  }
}

export class ProtocolError extends Error {
  /** Short machine-readable reason, e.g. 'frame_too_large', 'bad_msgpack', 'bad_shape'. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(`protocol error (${reason}): ${message}`);
    this.name = 'ProtocolError';
    this.reason = reason;
  }
}
