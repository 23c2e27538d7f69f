import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeMysqlPacket, decodePgReply } from '../../src/health/checks/dbprobe.ts';
import { parsePluginOutput } from '../../src/health/checks/nagios.ts';
import { once, until } from './helpers.ts';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => resolve(p)); });
  });
}

const PG_BIN = ['/usr/local/bin', '/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin'].find((d) => existsSync(join(d, 'initdb')));

test('postgres: a real throwaway server is probed at protocol level, then fails when stopped', { skip: PG_BIN ? false : 'no PostgreSQL binaries on this machine' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'multiall-health-pg-'));
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: run it as the postgres user then.
  const cmd = (bin: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN as string, bin), ...args]] : [join(PG_BIN as string, bin), args]);
  if (asRoot) await chown(dir, Number(spawnSync('id', ['-u', 'postgres']).stdout.toString()), Number(spawnSync('id', ['-g', 'postgres']).stdout.toString()));
  const [ib, ia] = cmd('initdb', ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const init = spawnSync(ib, ia);
  assert.equal(init.status, 0, init.stderr.toString());
  const port = await freePort();
  const [pb, pa] = cmd('postgres', ['-D', join(dir, 'data'), '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off']);
  const pg: ChildProcess = spawn(pb, pa, { stdio: 'ignore' });
  try {
    await until(async () => (await once(`tcp 127.0.0.1:${port} fails then critical`)).raw === 'OK', 'postgres to listen');
    let up = await once(`postgres 127.0.0.1:${port} fails then critical`);
    // Right after it listens the server may still be "starting up" (57P03): that must fail.
    await until(async () => (up = await once(`postgres 127.0.0.1:${port} fails then critical`)).raw === 'OK', `postgres to accept (${up.output})`);
    assert.match(up.output, /accepting connections \(auth trust\)/);
    const nodb = await once(`postgres 127.0.0.1:${port} database no_such_db fails then critical`);
    assert.equal(nodb.raw, 'OK', 'an unknown database still proves a live server');
    assert.match(nodb.output, /3D000/);
    assert.equal((await once(`postgres 127.0.0.1:${port} latency > 60s then warning`)).raw, 'OK');
  } finally {
    pg.kill('SIGTERM'); // runuser ignores SIGINT but forwards SIGTERM (smart shutdown; our probes hold no sessions)
    await new Promise((r) => pg.once('exit', r));
  }
  const down = await once(`postgres 127.0.0.1:${port} fails then critical`);
  assert.equal(down.raw, 'CRITICAL');
  assert.match(down.output, /ECONNREFUSED/);
  await rm(dir, { recursive: true, force: true });
});

/** MySQL protocol 10 greeting as MariaDB 10.11 sends it (capabilities include PROTOCOL_41). */
function greeting(): Buffer {
  const p = Buffer.concat([
    Buffer.from([10]), Buffer.from('10.11.6-MariaDB\0', 'latin1'),
    Buffer.from([42, 0, 0, 0]), Buffer.from('abcdefgh'), Buffer.from([0]),
    Buffer.from([0xfe, 0xf7]), Buffer.from([45]), Buffer.from([2, 0]), Buffer.from([0xff, 0x81]), Buffer.from([21]),
    Buffer.alloc(10), Buffer.from('ijklmnopqrst\0'), Buffer.from('mysql_native_password\0'),
  ]);
  return frame(p, 0);
}
function frame(p: Buffer, seq: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(p.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, p]);
}
function errPacket(code: number, state: string, msg: string, seq: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = 0xff;
  b.writeUInt16LE(code, 1);
  return frame(Buffer.concat([b, Buffer.from(`#${state}${msg}`)]), seq);
}

test('mysql: greeting, login attempt answered, COM_QUIT; an ERR greeting fails', async () => {
  const received: Buffer[] = [];
  let mode: 'ok' | 'busy' = 'ok';
  const srv = createServer((s: Socket) => {
    if (mode === 'busy') { s.end(errPacket(1040, '08004', 'Too many connections', 0)); return; }
    s.write(greeting());
    s.on('data', (d) => {
      received.push(d);
      if (d[4] === 0x01 && d[3] === 0) { s.end(); return; } // COM_QUIT
      s.write(errPacket(1045, '28000', "Access denied for user 'multiall_probe'@'localhost'", 2));
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    const ok = await once(`mysql 127.0.0.1:${port} fails then critical`);
    assert.equal(ok.raw, 'OK', ok.output);
    assert.match(ok.output, /10\.11\.6-MariaDB greeting \(connection 42\).*1045 Access denied/);
    await until(() => Buffer.concat(received).includes(Buffer.from([1, 0, 0, 0, 1])), 'COM_QUIT');
    const all = Buffer.concat(received);
    assert.equal(all[3], 1, 'handshake response has sequence 1');
    assert.ok(all.includes(Buffer.from('multiall_probe\0')), 'handshake response names the probe user');
    mode = 'busy';
    const busy = await once(`mysql 127.0.0.1:${port} fails then critical`);
    assert.equal(busy.raw, 'CRITICAL');
    assert.match(busy.output, /error 1040 \(08004\): Too many connections/);
  } finally {
    srv.close();
  }
});

test('fuzz: protocol decoders and the plugin output parser never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, g) => {
    const b = Buffer.from(bytes);
    const pg = decodePgReply(b);
    if (!pg.need && 'used' in pg) assert.ok(pg.used <= b.length);
    const my = decodeMysqlPacket(b, g);
    if (!my.need && 'used' in my) assert.ok(my.used <= b.length);
  }), { numRuns: 3000 });
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => {
    const r = parsePluginOutput(s);
    for (const p of r.perfdata) assert.ok(Number.isFinite(p.value) && p.label.length > 0);
  }), { numRuns: 3000 });
  // Structured perfdata fuzz: what we render, we parse back.
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 20 }).filter((l) => !/[=\s]/.test(l) && !l.startsWith("'")), fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.constantFrom('', '%', 's', 'ms', 'B', 'KB', 'c'), (label, value, uom) => {
    const v = Number(value.toFixed(3)) + 0; // + 0 turns -0 into 0, as rendering does
    const r = parsePluginOutput(`OK | '${label.replace(/'/g, "''")}'=${v}${uom};1;2;0;100`);
    assert.deepEqual(r.perfdata, [{ label, value: v, uom, warn: '1', crit: '2', min: 0, max: 100 }]);
  }), { numRuns: 500 });
});

const MARIADB = existsSync('/usr/sbin/mariadbd') && existsSync('/usr/bin/mariadb-install-db');

test('mysql: a real throwaway MariaDB server is probed at protocol level, then fails when stopped', { skip: MARIADB ? false : 'no MariaDB server binaries (Debian mariadb-server)' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mariadb-probe-'));
  const port = await freePort();
  const init = spawnSync('/usr/bin/mariadb-install-db', ['--no-defaults', `--datadir=${join(dir, 'data')}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=normal'], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const db: ChildProcess = spawn('/usr/sbin/mariadbd', [
    '--no-defaults', `--datadir=${join(dir, 'data')}`, `--port=${port}`, '--bind-address=127.0.0.1',
    `--socket=${join(dir, 'mysqld.sock')}`, `--pid-file=${join(dir, 'mysqld.pid')}`, '--user=root', '--skip-log-bin', '--innodb-buffer-pool-size=16M',
  ], { stdio: 'ignore' });
  try {
    let up = await once(`mysql 127.0.0.1:${port} fails then critical`);
    await until(async () => (up = await once(`mysql 127.0.0.1:${port} fails then critical`)).raw === 'OK', `mariadb to accept (${up.output})`);
    assert.match(up.output, /MariaDB/i);
  } finally {
    db.kill('SIGTERM');
    await new Promise((r) => db.once('exit', r));
  }
  const down = await once(`mysql 127.0.0.1:${port} fails then critical`);
  assert.equal(down.raw, 'CRITICAL');
  await rm(dir, { recursive: true, force: true });
});
