import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { EventBus, type BusEvent } from '../../src/events/bus.ts';
import { HealthMonitor } from '../../src/health/monitor.ts';
import { registerHealthMetrics } from '../../src/health/metrics.ts';
import { parseRule } from '../../src/health/rules.ts';
import { RuleState, percentStateChange } from '../../src/health/runner.ts';
import type { Check, CheckStatus } from '../../src/health/types.ts';
import { FLAP, MemoryHistory, gone, once, until } from './helpers.ts';
import { createCheck } from '../../src/health/checks/index.ts';
import { CommandCheck } from '../../src/health/checks/command.ts';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'multiall-health-runner-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

/** A monitor over one real file rule; `present(bool)` creates/removes the file between cycles. */
async function fileMonitor(ruleText: (f: string) => string, name: string) {
  const f = join(dir, `${name}.flag`);
  await writeFile(f, 'x');
  const bus = new EventBus();
  const events: BusEvent<'health.changed'>[] = [];
  bus.on('health.changed', (e) => events.push(e));
  const history = new MemoryHistory();
  const mon = new HealthMonitor({ node: 'web1', rules: [parseRule(ruleText(f), name)], bus, history });
  const present = async (on: boolean): Promise<void> => { if (on) await writeFile(f, 'x'); else await unlink(f).catch(() => undefined); };
  const step = async (on: boolean): Promise<{ raw: CheckStatus; status: CheckStatus; flapping: boolean }> => {
    await present(on);
    const r = (await mon.runCycle()).get(name);
    assert.ok(r);
    return { raw: r.raw, status: r.status, flapping: r.flapping };
  };
  return { mon, events, history, step };
}

test('hysteresis: "for 3 cycles" to trigger, "recover after 2 cycles" to clear; counters reset', async () => {
  const { mon, events, history, step } = await fileMonitor((f) => `file ${f} missing for 3 cycles then critical recover after 2 cycles`, 'hb');
  assert.equal(mon.summary().status, 'UNKNOWN'); // nothing checked yet
  assert.deepEqual(await step(true), { raw: 'OK', status: 'OK', flapping: false }); // a first OK is taken at once
  assert.equal(mon.summary().status, 'OK');
  assert.equal((await step(false)).status, 'OK');
  assert.equal((await step(false)).status, 'OK');
  assert.match(mon.summary().checks[0]?.output ?? '', /\[CRITICAL 2\/3 cycles\]/);
  assert.equal((await step(true)).status, 'OK'); // streak broken
  assert.equal((await step(false)).status, 'OK');
  assert.equal((await step(false)).status, 'OK');
  assert.deepEqual(await step(false), { raw: 'CRITICAL', status: 'CRITICAL', flapping: false });
  assert.equal(mon.summary().status, 'CRITICAL');
  assert.deepEqual(await step(true), { raw: 'OK', status: 'CRITICAL', flapping: false });
  assert.match(mon.summary().checks[0]?.output ?? '', /\[recovering: OK 1\/2 cycles\]/);
  assert.equal((await step(false)).status, 'CRITICAL');
  assert.equal((await step(true)).status, 'CRITICAL'); // recover streak restarted
  assert.equal((await step(true)).status, 'OK');

  const changes = events.map((e) => `${e.data.check ?? 'node'}:${e.data.previous}->${e.data.status}`);
  assert.deepEqual(changes, ['hb:UNKNOWN->OK', 'node:UNKNOWN->OK', 'hb:OK->CRITICAL', 'node:OK->CRITICAL', 'hb:CRITICAL->OK', 'node:CRITICAL->OK']);
  assert.equal(history.entries.length, 11);
  assert.deepEqual(history.entries.slice(6, 8).map((e) => [e.raw, e.status]), [['CRITICAL', 'CRITICAL'], ['OK', 'CRITICAL']]);
});

test('a pending first failure reads UNKNOWN until "for N cycles" is reached', async () => {
  const { step, mon } = await fileMonitor((f) => `file ${f} missing for 2 cycles then warning`, 'p');
  assert.equal((await step(false)).status, 'UNKNOWN');
  assert.match(mon.summary().checks[0]?.output ?? '', /^pending: .*\[WARNING 1\/2 cycles\]/);
  assert.equal((await step(false)).status, 'WARNING');
});

test('flap detection holds the worst status while a check bounces, and releases it when stable', async () => {
  const { step, events } = await fileMonitor((f) => `file ${f} missing then critical`, 'flappy');
  const seen: { raw: CheckStatus; status: CheckStatus; flapping: boolean }[] = [];
  for (let i = 0; i < 20; i++) seen.push(await step(i % 2 === 0));
  const firstFlap = seen.findIndex((s) => s.flapping);
  assert.ok(firstFlap > 0, 'alternating OK/CRITICAL must be detected as flapping');
  for (const s of seen.slice(firstFlap)) {
    assert.equal(s.flapping, true);
    assert.equal(s.status, 'CRITICAL', 'while flapping the worst status is held, even on OK cycles');
  }
  assert.ok(seen.slice(firstFlap).some((s) => s.raw === 'OK'));
  // Stable again: the weighted change rate falls below the low threshold and flapping ends.
  let last = seen[seen.length - 1];
  for (let i = 0; i < 20 && last?.flapping; i++) last = await step(true);
  assert.deepEqual(last, { raw: 'OK', status: 'OK', flapping: false });
  // Without damping there would have been ~20 check-level changes.
  const checkChanges = events.filter((e) => e.data.check === 'flappy').length;
  assert.ok(checkChanges <= firstFlap + 2, `${checkChanges} changes`);
});

test('percent state change follows Nagios weighting', () => {
  const alt: CheckStatus[] = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'OK' : 'CRITICAL'));
  assert.equal(Math.round(percentStateChange(alt, 20)), 100);
  assert.equal(percentStateChange(Array(20).fill('OK'), 20), 0);
  // One change, newest position, weighs 1.2; oldest weighs 0.8.
  const newest = [...Array(19).fill('OK'), 'CRITICAL'] as CheckStatus[];
  const oldest = ['CRITICAL', ...Array(19).fill('OK')] as CheckStatus[];
  assert.equal(percentStateChange(newest, 20).toFixed(3), ((1.2 / 19) * 100).toFixed(3));
  assert.equal(percentStateChange(oldest, 20).toFixed(3), ((0.8 / 19) * 100).toFixed(3));
  const st = new RuleState(1, 1, FLAP);
  for (let i = 0; i < 12; i++) st.feed(i % 2 ? 'OK' : 'WARNING', 'x', i);
  assert.equal(st.flapping, true);
  assert.equal(st.reported, 'WARNING');
});

test('a throwing check is UNKNOWN with the error; a check ignoring its signal still times out', async () => {
  const r = await once('disk /no/such/mount usage > 90% then critical');
  assert.equal(r.raw, 'UNKNOWN');
  assert.match(r.rawOutput, /^check error: ENOENT/);

  // Contract test of the runner: a check that never settles and ignores the abort.
  const hung: Check = { run: () => new Promise(() => undefined) };
  const mon = new HealthMonitor({ node: 'n', rules: [parseRule('tcp 127.0.0.1:9 fails then critical timeout 100ms', 'hung')], createCheck: () => hung });
  const res = (await mon.runCycle()).get('hung');
  assert.equal(res?.raw, 'UNKNOWN');
  assert.equal(res?.rawOutput, 'timed out after 100ms');
});

test('summary is the worst rule; maintenance overrides and is published; Prometheus gauges', async () => {
  const okFile = join(dir, 'present');
  await writeFile(okFile, 'x');
  const bus = new EventBus();
  const events: string[] = [];
  bus.on('health.changed', (e) => events.push(`${e.data.check ?? 'node'}:${e.data.status}`));
  const mon = new HealthMonitor({
    node: 'web1', bus,
    rules: [
      parseRule(`file ${okFile} missing then critical`, 'present'),
      parseRule(`file ${join(dir, 'absent')} missing then warning`, 'absent'),
    ],
  });
  await mon.runCycle();
  const s = mon.summary();
  assert.equal(s.status, 'WARNING');
  assert.deepEqual(s.checks.map((c) => [c.name, c.status, c.flapping]), [['present', 'OK', false], ['absent', 'WARNING', false]]);
  assert.ok(s.checks.every((c) => c.since > 0 && c.output.length > 0));

  mon.setMaintenance(true, 'kernel upgrade');
  assert.equal(mon.summary().status, 'MAINTENANCE');
  assert.equal(mon.summary().maintenance?.reason, 'kernel upgrade');
  const reg = new Registry();
  registerHealthMetrics(reg, mon);
  let text = await reg.metrics();
  assert.match(text, /multiall_health_status\{node="web1"\} 4/);
  assert.match(text, /multiall_health_check_status\{node="web1",check="absent"\} 1/);
  assert.match(text, /multiall_health_check_status\{node="web1",check="present"\} 0/);
  mon.setMaintenance(false);
  text = await reg.metrics();
  assert.match(text, /multiall_health_status\{node="web1"\} 1/);
  assert.deepEqual(events, ['present:OK', 'node:WARNING', 'absent:WARNING', 'node:MAINTENANCE', 'node:WARNING']);
});

test('start() runs every rule on its own timer; stop() kills a command in progress', async () => {
  const f = join(dir, 'timer');
  await writeFile(f, 'x');
  const bus = new EventBus();
  let cmd: CommandCheck | undefined;
  const mon = new HealthMonitor({
    node: 'web1', bus,
    rules: [parseRule(`file ${f} missing then critical every 20ms`, 'f'), parseRule('command "exec sleep 30" then nagios timeout 60s', 'slow')],
    createCheck: (r) => {
      const c = createCheck(r);
      if (c instanceof CommandCheck) cmd = c;
      return c;
    },
  });
  const seen = new Promise<void>((resolve) => bus.on('health.changed', (e) => { if (e.data.check === 'f' && e.data.status === 'OK') resolve(); }));
  mon.start();
  await seen; // the file rule reported while the command is still running: checks do not block each other
  assert.equal(mon.summary().checks.find((c) => c.name === 'slow')?.status, 'UNKNOWN');
  const pid = cmd?.lastPid;
  assert.ok(pid !== undefined && !(await gone(pid)), 'the command is running');
  await mon.stop();
  await until(() => gone(pid), `command ${pid} to be killed by stop()`);
});
