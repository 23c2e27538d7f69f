import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, utimes, writeFile, chmod } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CommandCheck } from '../../src/health/checks/command.ts';
import { parseRule } from '../../src/health/rules.ts';
import { RuleRunner } from '../../src/health/runner.ts';
import { FLAP, gone, once, until } from './helpers.ts';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'multiall-health-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

test('http: status, body regex, latency against a local server; closed port fails', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/health') { res.end('status: ok'); return; }
    if (req.url === '/slow') { setTimeout(() => res.end('ok'), 50); return; }
    res.statusCode = 503;
    res.end('down for maintenance');
  });
  const port = await listen(server);
  const base = `http://127.0.0.1:${port}`;
  try {
    const ok = await once(`http ${base}/health status != 200 then critical`);
    assert.equal(ok.raw, 'OK', ok.output);
    assert.match(ok.output, /: 200 OK in .*status 200 not != 200/);
    const bad = await once(`http ${base}/broken status != 200 then critical`);
    assert.equal(bad.raw, 'CRITICAL');
    assert.match(bad.output, /503/);
    assert.equal((await once(`http ${base}/health body !~ "ok" then warning`)).raw, 'OK');
    const body = await once(`http ${base}/broken body !~ "ok" then warning`);
    assert.equal(body.raw, 'WARNING');
    assert.match(body.output, /does not match \/ok\//);
    // The handler waits 50ms, so latency is at least that: a lower bound, not a timing assertion.
    assert.equal((await once(`http ${base}/slow latency > 40ms then warning`)).raw, 'WARNING');
    assert.equal((await once(`http ${base}/health latency > 60s then warning`)).raw, 'OK');
  } finally {
    server.close();
  }
  const down = await once(`http ${base}/health status != 200 then critical`);
  assert.equal(down.raw, 'CRITICAL');
  assert.match(down.output, /ECONNREFUSED/);
});

test('tcp: listener up is OK, closed is CRITICAL', async () => {
  const srv = createTcpServer((s) => s.end());
  const port = await listen(srv);
  const up = await once(`tcp 127.0.0.1:${port} fails then critical`);
  assert.equal(up.raw, 'OK', up.output);
  await new Promise((r) => srv.close(r));
  const down = await once(`tcp 127.0.0.1:${port} fails then critical`);
  assert.equal(down.raw, 'CRITICAL');
  assert.match(down.output, /ECONNREFUSED/);
});

/** A tiny authoritative DNS server on 127.0.0.1: A records for ok.test, NXDOMAIN otherwise. */
async function dnsServer(): Promise<{ port: number; close: () => void }> {
  const sock = createSocket('udp4');
  sock.on('message', (q, rinfo) => {
    let i = 12;
    const labels: string[] = [];
    while (q[i]) { labels.push(q.subarray(i + 1, i + 1 + (q[i] as number)).toString()); i += 1 + (q[i] as number); }
    const qEnd = i + 5;
    const name = labels.join('.');
    const found = name === 'ok.test';
    const head = Buffer.from(q.subarray(0, 12));
    head[2] = 0x84 | ((q[2] as number) & 0x01); // QR, AA, RD copied
    head[3] = found ? 0 : 3; // NOERROR / NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(found ? 1 : 0, 6);
    head.writeUInt16BE(0, 8);
    head.writeUInt16BE(0, 10);
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    sock.send(Buffer.concat([head, q.subarray(12, qEnd), found ? answer : Buffer.alloc(0)]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { port: sock.address().port, close: () => sock.close() };
}

test('dns: query a given server; NXDOMAIN fails', async () => {
  const dns = await dnsServer();
  try {
    const ok = await once(`dns ok.test @127.0.0.1:${dns.port} type A fails then critical`);
    assert.equal(ok.raw, 'OK', ok.output);
    assert.match(ok.output, /192\.0\.2\.7/);
    const nx = await once(`dns missing.test @127.0.0.1:${dns.port} type A fails then critical`);
    assert.equal(nx.raw, 'CRITICAL');
    assert.match(nx.output, /ENOTFOUND/);
  } finally {
    dns.close();
  }
});

test('file: missing, age and size on a real temp file', async () => {
  const f = join(dir, 'app.heartbeat');
  assert.equal((await once(`file ${f} missing then warning`)).raw, 'WARNING');
  await writeFile(f, Buffer.alloc(2048));
  assert.equal((await once(`file ${f} missing then warning`)).raw, 'OK');
  assert.equal((await once(`file ${f} age > 60s then critical`)).raw, 'OK');
  const old = new Date(Date.now() - 120_000);
  await utimes(f, old, old);
  const stale = await once(`file ${f} age > 60s then critical`);
  assert.equal(stale.raw, 'CRITICAL');
  assert.match(stale.output, /age 2\.0m|age 1[12]\d\.\ds|age 120/);
  assert.equal((await once(`file ${f} size > 1KB then warning`)).raw, 'WARNING');
  assert.equal((await once(`file ${f} size > 1GB then warning`)).raw, 'OK');
});

test('disk, memory, swap, cpu and load read real values', async () => {
  const disk = await once('disk / usage > 100% then critical');
  assert.equal(disk.raw, 'OK', disk.output);
  assert.match(disk.output, /^\/: \d+(\.\d)?% used \(/);
  assert.equal((await once('disk / usage >= 0% then warning')).raw, 'WARNING');
  const mem = await once('memory usage > 100% then warning');
  assert.equal(mem.raw, 'OK');
  assert.match(mem.output, /^memory \d+(\.\d)?% used \(\d+\.\d\dGiB of \d+\.\d\dGiB\)/);
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  assert.ok(/MemTotal:\s+[1-9]/.test(meminfo));
  assert.equal((await once('memory usage >= 0% then warning')).raw, 'WARNING');
  assert.match((await once('swap usage > 100% then warning')).output, /^swap/);
  const cpu = await once('cpu usage > 100% then critical');
  assert.equal(cpu.raw, 'OK');
  assert.match(cpu.output, /^cpu \d+(\.\d)?% \(user/);
  assert.equal((await once('load 1m >= 0 then warning')).raw, 'WARNING');
});

test('process: by name, by regex, by pid file (stale pid file counts as missing)', async () => {
  const child = spawn('sleep', ['31.4159'], { stdio: 'ignore' });
  try {
    await until(async () => (await readFile(`/proc/${child.pid}/cmdline`, 'utf8').catch(() => '')).includes('31.4159'), 'sleep to exec');
    const byName = await once('process sleep count < 1 then critical');
    assert.equal(byName.raw, 'OK', byName.output);
    assert.equal((await once('process no-such-process-xyz count < 1 then critical')).raw, 'CRITICAL');
    assert.equal((await once('process match "^sleep 31\\.4159$" count != 1 then warning')).raw, 'OK');
    const pidfile = join(dir, 'sleep.pid');
    await writeFile(pidfile, `${child.pid}\n`);
    assert.equal((await once(`process pidfile ${pidfile} missing then critical`)).raw, 'OK');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const stale = await once(`process pidfile ${pidfile} missing then critical`);
    assert.equal(stale.raw, 'CRITICAL');
    assert.match(stale.output, /stale pid file/);
    assert.equal((await once('process match "^sleep 31\\.4159$" count != 1 then warning')).raw, 'WARNING');
  } finally {
    child.kill('SIGKILL');
  }
});

test('command: a hung command is killed with its process group at the timeout and is UNKNOWN', async () => {
  const pidfile = join(dir, 'grandchild.pid');
  const rule = parseRule(`command "sleep 30 & echo $! > ${pidfile}; wait" then nagios timeout 300ms`);
  const check = new CommandCheck((rule.params as { command: string }).command);
  const runner = new RuleRunner(rule, check, FLAP, rule.timeoutMs as number);
  const res = await runner.cycle();
  assert.equal(res.raw, 'UNKNOWN');
  assert.equal(res.rawOutput, 'timed out after 300ms');
  const shell = check.lastPid as number;
  const sleeper = Number((await readFile(pidfile, 'utf8')).trim());
  assert.ok(sleeper > 0);
  await until(() => gone(shell), `shell ${shell} to be gone`);
  await until(() => gone(sleeper), `sleep ${sleeper} to be gone`);
});

test('command: Nagios exit codes and perfdata', async () => {
  const plugin = join(dir, 'check_fake');
  await writeFile(plugin, `#!/bin/sh
case "$1" in
  0) echo "DISK OK - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968"; exit 0 ;;
  1) echo "LOAD WARNING - load 5.1 | 'load 1'=5.1;4;8;0 load5=3.0;;;0"; echo "long line"; exit 1 ;;
  2) echo "CRITICAL - down"; exit 2 ;;
  3) echo "UNKNOWN - cannot tell"; exit 3 ;;
  *) echo "odd" >&2; exit 7 ;;
esac
`);
  await chmod(plugin, 0o755);
  const run = async (arg: string) => {
    const rule = parseRule(`command "${plugin} ${arg}" then nagios`);
    const check = new CommandCheck((rule.params as { command: string }).command);
    const obs = await check.run(new AbortController().signal);
    const res = await new RuleRunner(rule, check, FLAP, 5000).cycle();
    return { obs, res };
  };
  const ok = await run('0');
  assert.equal(ok.res.raw, 'OK');
  assert.equal(ok.res.rawOutput, 'DISK OK - free space: / 3326 MB (56%) [exit 0]');
  assert.deepEqual(ok.obs.nagios?.perfdata, [{ label: '/', value: 2643, uom: 'MB', warn: '5948', crit: '5958', min: 0, max: 5968 }]);
  const warn = await run('1');
  assert.equal(warn.res.raw, 'WARNING');
  assert.deepEqual(warn.obs.nagios?.perfdata, [
    { label: 'load 1', value: 5.1, uom: '', warn: '4', crit: '8', min: 0 },
    { label: 'load5', value: 3, uom: '', min: 0 },
  ]);
  assert.equal(warn.obs.nagios?.longOutput, 'long line');
  assert.equal((await run('2')).res.raw, 'CRITICAL');
  assert.equal((await run('3')).res.raw, 'UNKNOWN');
  const odd = await run('9');
  assert.equal(odd.res.raw, 'UNKNOWN');
  assert.equal(odd.res.rawOutput, 'odd [exit 7]');
  // `fails` form: any non-zero exit violates.
  assert.equal((await once(`command "${plugin} 1" fails then warning`)).raw, 'WARNING');
  assert.equal((await once(`command "${plugin} 0" fails then warning`)).raw, 'OK');
});
