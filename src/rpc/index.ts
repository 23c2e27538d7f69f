/**
 * RPC component: request/response and bidirectional streams between agents over mutual TLS 1.3,
 * many requests multiplexed on one connection per peer. Wire format in docs/rpc-protocol.md.
 *  - frame.ts: length-prefixed MessagePack frames, streaming decoder (fuzzed).
 *  - connection.ts: one connection (backpressure, keepalive), RpcStream, and the client's
 *    reused read buffer (tls onread: no Buffer per TLS record).
 *  - server.ts: RpcServer (handle / handleStream / listen / graceful close).
 *  - client.ts: RpcClientPool (call / openStream / close), one connection per peer name.
 * Depends on: security/tls.ts, events/bus.ts ('rpc.peer_refused'), log/logger.ts, msgpackr.
 */
export { RpcServer, type RpcServerOptions, type RequestContext, type StreamContext, type Handler, type StreamHandler } from './server.ts';
export { RpcClientPool, type RpcClientPoolOptions, type PeerAddress, type CallOptions } from './client.ts';
export { RpcStream } from './connection.ts';
export { RpcError, ProtocolError, ErrorCodes } from './errors.ts';
export { encodeFrame, FrameDecoder, validateMessage, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, type Message } from './frame.ts';
