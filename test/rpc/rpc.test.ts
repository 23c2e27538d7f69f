import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { silentLogger } from '../../src/log/logger.ts';
import { EventBus, type BusEvent } from '../../src/events/bus.ts';
import { RpcServer } from '../../src/rpc/server.ts';
import { RpcClientPool, type PeerAddress } from '../../src/rpc/client.ts';
import { RpcError } from '../../src/rpc/errors.ts';
import { encodeFrame } from '../../src/rpc/frame.ts';
import { clientTlsOptions } from '../../src/security/tls.ts';
import { twoNodeFixture } from '../security/pki.ts';

const fx = twoNodeFixture();
const log = silentLogger();

/** The 'bulk' handler's reply from byte `off` on: a different fill for every 64 KiB. */
function replyChunk(off: number, size: number): Buffer {
  return Buffer.alloc(Math.min(64 * 1024, size - off), (off >> 16) & 0xff);
}

async function startServer(opts: Partial<ConstructorParameters<typeof RpcServer>[0]> = {}): Promise<{ server: RpcServer; peer: PeerAddress }> {
  const server = new RpcServer({ tls: fx.web1, host: '127.0.0.1', port: 0, logger: log, ...opts });
  server.handle('echo', async (body, ctx) => ({ body, peer: ctx.peer }));
  server.handle('fail', async () => {
    throw new RpcError('not_found', 'no such thing');
  });
  server.handle('crash', async () => {
    throw new Error('internal detail at /srv/secret.ts:12');
  });
  // Counts bytes it receives and returns their sha256, then streams `body.reply` bytes back.
  server.handleStream('bulk', async (ctx, stream) => {
    const h = createHash('sha256');
    let n = 0;
    for await (const c of stream) {
      h.update(c as Buffer);
      n += (c as Buffer).length;
    }
    const reply = (ctx.body as { reply: number }).reply;
    for (let off = 0; off < reply; off += 64 * 1024) await stream.write(replyChunk(off, reply));
    await stream.write({ received: n, sha256: h.digest('hex'), peer: ctx.peer });
  });
  const { port } = await server.listen();
  return { server, peer: { name: 'web1', host: '127.0.0.1', port } };
}

test('mTLS call: peer identity from certificates, remote errors as RpcError without stacks', async () => {
  const { server, peer } = await startServer();
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    assert.deepEqual(await pool.call(peer, 'echo', { a: [1, 'x'], b: Buffer.from('hi') }), { body: { a: [1, 'x'], b: Buffer.from('hi') }, peer: 'web2' });
    await assert.rejects(pool.call(peer, 'fail', null), (e: unknown) => e instanceof RpcError && e.code === 'not_found' && e.message === 'no such thing');
    await assert.rejects(pool.call(peer, 'crash', null), (e: unknown) => e instanceof RpcError && e.code === 'internal' && !/\n\s+at /.test(e.message));
    await assert.rejects(pool.call(peer, 'nope', null), (e: unknown) => e instanceof RpcError && e.code === 'no_handler');
    await assert.rejects(pool.call(peer, 'bulk', null), (e: unknown) => e instanceof RpcError && e.code === 'no_handler' && /stream/.test(e.message));
  } finally {
    await pool.close();
    await server.close();
  }
});

test('stream: 10 MB each way through one stream, with backpressure', async () => {
  const { server, peer } = await startServer();
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    const size = 10 * 1024 * 1024;
    const stream = await pool.openStream(peer, 'bulk', { reply: size });
    const h = createHash('sha256');
    // Read concurrently with writing, slowly at first so that the server's writer must wait for
    // drain and our socket (reading into one reused buffer) is paused and resumed.
    const reading = (async () => {
      let got = 0;
      let last: unknown;
      let i = 0;
      const rh = createHash('sha256');
      for await (const c of stream) {
        if (i++ < 20) await new Promise((r) => setTimeout(r, 5));
        if (Buffer.isBuffer(c)) {
          got += c.length;
          rh.update(c);
        } else last = c;
      }
      return { got, last, sha256: rh.digest('hex') };
    })();
    for (let off = 0; off < size; off += 256 * 1024) {
      const c = Buffer.alloc(256 * 1024, (off / 1024) & 0xff);
      h.update(c);
      await stream.write(c);
    }
    stream.end();
    const { got, last, sha256 } = await reading;
    assert.equal(got, size);
    const want = createHash('sha256');
    for (let off = 0; off < size; off += 64 * 1024) want.update(replyChunk(off, size));
    assert.equal(sha256, want.digest('hex'), 'the reply arrived intact');
    assert.deepEqual(last, { received: size, sha256: h.digest('hex'), peer: 'web2' });
    assert.equal(server.inFlight, 0);
  } finally {
    await pool.close();
    await server.close();
  }
});

test('many concurrent calls share one connection', async () => {
  const { server, peer } = await startServer();
  const remotes = new Set<string>();
  server.handle('slow', async (body, ctx) => {
    remotes.add(ctx.remote);
    await new Promise((r) => setTimeout(r, 5));
    return body;
  });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => pool.call(peer, i % 2 ? 'slow' : 'echo', i)));
    results.forEach((r, i) => assert.deepEqual(r, i % 2 ? i : { body: i, peer: 'web2' }));
    assert.equal(remotes.size, 1, 'every call came over the same connection');
    assert.equal(server.connectionCount, 1);
  } finally {
    await pool.close();
    await server.close();
  }
});

test('timeout rejects with a clear error and the connection stays usable', async () => {
  const { server, peer } = await startServer();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let aborted = false;
  server.handle('hang', async (_b, ctx) => {
    ctx.signal.addEventListener('abort', () => (aborted = true));
    await held;
    return 'late';
  });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    await assert.rejects(pool.call(peer, 'hang', null, { timeoutMs: 50 }), (e: unknown) => e instanceof RpcError && e.code === 'timeout' && /rpc hang to web1 timed out after \d+ ms/.test(e.message));
    assert.deepEqual(await pool.call(peer, 'echo', 1), { body: 1, peer: 'web2' });
    assert.equal(aborted, true, 'the cancel reached the handler');
  } finally {
    release();
    await pool.close();
    await server.close();
  }
});

test('server close waits for in-flight requests and refuses new ones', async () => {
  const { server, peer } = await startServer();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => (entered = r));
  server.handle('work', async () => {
    entered();
    await held;
    return 'done';
  });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    const call = pool.call(peer, 'work', null);
    await inHandler;
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await assert.rejects(pool.call(peer, 'echo', 1), (e: unknown) => e instanceof RpcError && e.code === 'shutting_down');
    assert.equal(closed, false);
    release();
    assert.equal(await call, 'done');
    await closing;
    assert.equal(closed, true);
  } finally {
    release();
    await pool.close();
  }
});

test('garbage over a real TLS socket closes that connection; the server keeps serving', async () => {
  const bus = new EventBus();
  const { server, peer } = await startServer({ bus });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    for (const garbage of [Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from([0xc1, 0xc1, 0xc1])]), encodeFrame({ t: 'res', id: 1, body: 1 })]) {
      const s = connect({ host: '127.0.0.1', port: peer.port, ...clientTlsOptions(fx.web2, 'web1') });
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      await once(s, 'secureConnect');
      s.write(garbage);
      await once(s, 'close');
      // The server said why before closing: hello, then an id-0 protocol_error.
      const text = Buffer.concat(chunks).toString('latin1');
      assert.match(text, /protocol_error/);
    }
    assert.deepEqual(await pool.call(peer, 'echo', 'still here'), { body: 'still here', peer: 'web2' });
  } finally {
    await pool.close();
    await server.close();
  }
});

test('reconnects after the server restarts on the same port', async () => {
  const first = await startServer();
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    assert.deepEqual(await pool.call(first.peer, 'echo', 1), { body: 1, peer: 'web2' });
    await first.server.close();
    const second = new RpcServer({ tls: fx.web1, host: '127.0.0.1', port: first.peer.port, logger: log });
    second.handle('echo', async (b) => ['again', b]);
    await second.listen();
    try {
      assert.deepEqual(await pool.call(first.peer, 'echo', 2), ['again', 2]);
    } finally {
      await second.close();
    }
  } finally {
    await pool.close();
  }
});

test('stream cancel and handler failure reach the other side', async () => {
  const { server, peer } = await startServer();
  let cancelledSeen!: (v: string) => void;
  const cancelled = new Promise<string>((r) => (cancelledSeen = r));
  server.handleStream('forever', async (_ctx, stream) => {
    try {
      for await (const _c of stream) { /* consume */ }
    } catch (e) {
      cancelledSeen((e as RpcError).code);
      throw e;
    }
  });
  server.handleStream('boom', async (_ctx, stream) => {
    await stream.write('first');
    throw new RpcError('bad_input', 'rejected chunk');
  });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log });
  try {
    const s = await pool.openStream(peer, 'forever', null);
    await s.write('x');
    s.cancel();
    assert.equal(await cancelled, 'cancelled');
    const b = await pool.openStream(peer, 'boom', null);
    const seen: unknown[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of b) seen.push(c);
      })(),
      (e: unknown) => e instanceof RpcError && e.code === 'bad_input' && e.message === 'rejected chunk',
    );
    assert.deepEqual(seen, ['first']);
  } finally {
    await pool.close();
    await server.close();
  }
});

test('bus sees nothing on the happy path', async () => {
  const bus = new EventBus();
  const events: BusEvent[] = [];
  bus.onAny((e) => events.push(e));
  const { server, peer } = await startServer({ bus });
  const pool = new RpcClientPool({ tls: fx.web2, logger: log, bus });
  try {
    await pool.call(peer, 'echo', 1);
    assert.deepEqual(events, []);
  } finally {
    await pool.close();
    await server.close();
  }
});
