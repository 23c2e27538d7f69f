import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../../src/log/logger.ts';
import { EventBus, type BusEvent } from '../../src/events/bus.ts';
import { RpcServer } from '../../src/rpc/server.ts';
import { RpcClientPool, type PeerAddress } from '../../src/rpc/client.ts';
import { RpcError } from '../../src/rpc/errors.ts';
import { clientTlsOptions, describeTlsError, type TlsMaterial } from '../../src/security/tls.ts';
import { twoNodeFixture } from '../security/pki.ts';

const fx = twoNodeFixture();
const log = silentLogger();

interface Setup {
  server: RpcServer;
  peer: PeerAddress;
  refusals: () => Promise<BusEvent<'rpc.peer_refused'>>;
  bus: EventBus;
}

async function serve(tls: TlsMaterial, opts: { handshakeTimeoutMs?: number } = {}): Promise<Setup> {
  const bus = new EventBus();
  const server = new RpcServer({ tls, host: '127.0.0.1', port: 0, logger: log, bus, ...opts });
  server.handle('whoami', async (_b, ctx) => ctx.peer);
  const { port } = await server.listen();
  const refusals = (): Promise<BusEvent<'rpc.peer_refused'>> =>
    new Promise((resolve) => {
      const off = bus.on('rpc.peer_refused', (e) => {
        off();
        resolve(e);
      });
    });
  return { server, peer: { name: tls.nodeName, host: '127.0.0.1', port }, refusals, bus };
}

async function refusedCall(client: TlsMaterial, peer: PeerAddress, bus?: EventBus): Promise<RpcError> {
  const pool = new RpcClientPool({ tls: client, logger: log, bus });
  try {
    const err = await pool.call(peer, 'whoami', null).then(
      () => assert.fail('call should have been refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RpcError, String(err));
    return err;
  } finally {
    await pool.close();
  }
}

test('happy path identifies both ends', async () => {
  const s = await serve(fx.web1);
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    assert.equal(await pool.call(s.peer, 'whoami', null), 'web2');
  } finally {
    await pool.close();
    await s.server.close();
  }
});

test('server refuses a client certificate from a foreign CA', async () => {
  const s = await serve(fx.web1);
  const intruder = await fx.pki.node('web2', { foreign: true });
  try {
    const seen = s.refusals();
    const err = await refusedCall(intruder, s.peer);
    assert.equal(err.code, 'tls_refused');
    assert.match(err.message, /refused our certificate/);
    const ev = await seen;
    assert.equal(ev.data.reason, 'certificate signed by unknown CA');
    assert.match(ev.data.remote, /^127\.0\.0\.1:\d+$/);
  } finally {
    await s.server.close();
  }
});

test('client refuses a server certificate from a foreign CA', async () => {
  const impostor = await fx.pki.node('web1', { foreign: true });
  const s = await serve(impostor);
  const bus = new EventBus();
  const events: BusEvent<'rpc.peer_refused'>[] = [];
  bus.on('rpc.peer_refused', (e) => events.push(e));
  try {
    const err = await refusedCall(fx.web2, s.peer, bus);
    assert.equal(err.code, 'tls_refused');
    assert.match(err.message, /certificate signed by unknown CA/);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.data.reason, 'certificate signed by unknown CA');
  } finally {
    await s.server.close();
  }
});

test('server refuses an expired client certificate', async () => {
  const s = await serve(fx.web1);
  const stale = await fx.pki.node('web2', { days: -1 });
  try {
    const seen = s.refusals();
    const err = await refusedCall(stale, s.peer);
    assert.equal(err.code, 'tls_refused');
    assert.equal((await seen).data.reason, 'certificate expired');
  } finally {
    await s.server.close();
  }
});

test('client refuses an expired server certificate', async () => {
  const stale = await fx.pki.node('web1', { days: -1 });
  const s = await serve(stale);
  try {
    const err = await refusedCall(fx.web2, s.peer);
    assert.equal(err.code, 'tls_refused');
    assert.match(err.message, /certificate expired/);
  } finally {
    await s.server.close();
  }
});

test('client refuses a server that is not the node it asked for', async () => {
  const web3 = await fx.pki.node('web3');
  const s = await serve(web3);
  try {
    const err = await refusedCall(fx.web1, { ...s.peer, name: 'web2' });
    assert.equal(err.code, 'tls_refused');
    assert.match(err.message, /name mismatch: expected web2, got web3/);
  } finally {
    await s.server.close();
  }
});

test('a TLS 1.2-only client is refused', async () => {
  const s = await serve(fx.web1);
  try {
    const seen = s.refusals();
    const sock = tlsConnect({ host: '127.0.0.1', port: s.peer.port, ...clientTlsOptions(fx.web2, 'web1'), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    const [err] = (await once(sock, 'error').catch((e: unknown) => [e])) as [Error];
    assert.equal(describeTlsError(err), 'TLS version refused (TLS 1.3 required)');
    assert.equal((await seen).data.reason, 'TLS version refused (TLS 1.3 required)');
  } finally {
    await s.server.close();
  }
});

test('a peer that never finishes the handshake is dropped (slow loris)', async () => {
  const s = await serve(fx.web1, { handshakeTimeoutMs: 200 });
  try {
    const seen = s.refusals();
    const sock = netConnect(s.peer.port, '127.0.0.1');
    sock.on('error', () => undefined);
    sock.write(Buffer.from([0x16, 0x03, 0x01])); // start of a ClientHello, then silence
    await once(sock, 'close');
    assert.equal((await seen).data.reason, 'TLS handshake timed out');
  } finally {
    await s.server.close();
  }
});

test('connecting to a closed port fails with connect_failed', async () => {
  const s = await serve(fx.web1);
  const port = s.peer.port;
  await s.server.close();
  const err = await refusedCall(fx.web2, { name: 'web1', host: '127.0.0.1', port });
  assert.equal(err.code, 'connect_failed');
  assert.match(err.message, /cannot connect to web1 \(127\.0\.0\.1:\d+\): connection refused/);
});
