// The actions runner with real processes: order, variables, env, timeout kill of the process
// group, failure policies, guard, bounded output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionsRunner } from '../../src/failover/actions.ts';
import { runCommand, OUTPUT_LIMIT } from '../../src/failover/exec.ts';
import { checkTemplate, emptyVars, expandTemplate } from '../../src/failover/vars.ts';
import type { Action, HistorySink, OnFailure, Transition } from '../../src/failover/types.ts';
import { silentLogger } from '../../src/log/logger.ts';

const run = (cmd: string, onFailure: OnFailure = 'abort', extra: Partial<Action> = {}): Action =>
  ({ kind: 'run', run: cmd, timeoutMs: 5000, env: {}, onFailure, retries: 2, ...extra }) as Action;

function runner(actions: Partial<Record<Transition, Action[]>>, history?: HistorySink): ActionsRunner {
  return new ActionsRunner({
    pool: 'web', service: 'vip', node: 'n1', logger: silentLogger(), ...(history ? { history } : {}),
    actions: { standby_to_master: [], master_to_standby: [], to_fault: [], health_changed: [], ...actions },
  });
}

function vars() {
  const v = emptyVars();
  Object.assign(v, { MASTER: 'n1', SLAVE: 'n2', STANDBY: 'n2,n3', NODE: 'n1', POOL: 'web', SERVICE: 'vip', TERM: '7', PREVIOUS_MASTER: 'n3' });
  return v;
}

/** Dead or a zombie (an unreaped orphan in a container whose init does not reap). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fo-actions-'));
    try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

test('%VAR% expansion: every variable, %% and env export; unsafe values refused', () => {
  assert.equal(expandTemplate('%MASTER% %SLAVE% %STANDBY% %NODE% %POOL% %SERVICE% %TERM% %PREVIOUS_MASTER% 100%%', vars()), 'n1 n2 n2,n3 n1 web vip 7 n3 100%');
  assert.deepEqual(checkTemplate('%BOGUS%'), ['unknown variable %BOGUS% (known: %MASTER% %SLAVE% %STANDBY% %NODE% %POOL% %SERVICE% %TERM% %PREVIOUS_MASTER% %MEMBER% %HEALTH%, %% for a literal %)']);
  assert.throws(() => expandTemplate('x %MASTER%', { ...vars(), MASTER: 'a;rm -rf /' }), /value of %MASTER% .* refusing to put it in a shell command/);
});

test('actions run serially in order with variables and env', withDir(async (dir) => {
  const f = join(dir, 'out');
  const hist: unknown[] = [];
  const r = runner({ standby_to_master: [
    run(`sleep 0.2; echo "1 %MASTER% %TERM%" >> ${f}`),
    run(`echo "2 $MULTIALL_PREVIOUS_MASTER $EXTRA" >> ${f}`, 'abort', { env: { EXTRA: 'x' } }),
  ], master_to_standby: [run(`echo "3 %MASTER%" >> ${f}`)] }, { append: (k, d) => hist.push({ k, ...d }) });
  const p1 = r.enqueue('standby_to_master', vars());
  const p2 = r.enqueue('master_to_standby', { ...vars(), MASTER: 'n2' });
  const [a, b] = await Promise.all([p1, p2]);
  assert.equal(a.ok, true);
  assert.equal(b.ok, true);
  assert.deepEqual(readFileSync(f, 'utf8').trim().split('\n'), ['1 n1 7', '2 n3 x', '3 n2']);
  assert.equal(hist.length, 3);
}));

test('timeout kills the whole process group', withDir(async (dir) => {
  const pidFile = join(dir, 'pid');
  // The background sleep would outlive a plain kill of the shell.
  const r = await runCommand(`sleep 30 & echo $! > ${pidFile}; wait`, { timeoutMs: 300, env: {} });
  assert.equal(r.timedOut, true);
  assert.equal(r.ok, false);
  const child = Number(readFileSync(pidFile, 'utf8').trim());
  assert.equal(gone(child), true, 'the grandchild is gone too');
  const t = runner({ to_fault: [run('sleep 30', 'abort', { timeoutMs: 200 }), run('true')] });
  const res = await t.enqueue('to_fault', vars());
  assert.equal(res.ok, false);
  assert.match(res.actions[0]!.detail, /timed out after 200ms, process group killed/);
  assert.equal(res.actions.length, 1, 'abort: the second action did not run');
}));

test('failure policies: abort, continue, retry', withDir(async (dir) => {
  const f = join(dir, 'n');
  const r = runner({
    standby_to_master: [run('exit 3', 'continue'), run(`echo ran >> ${f}`)],
    master_to_standby: [run(`echo try >> ${f}; test $(wc -l < ${f}) -ge 4`, 'retry', { retries: 3 }), run(`echo after >> ${f}`)],
    to_fault: [run(`echo t >> ${f}; exit 1`, 'retry', { retries: 1 }), run(`echo never >> ${f}`)],
  });
  const a = await r.enqueue('standby_to_master', vars());
  assert.equal(a.ok, true, 'continue: a failure does not fail the transition');
  assert.match(a.actions[0]!.detail, /exit 3/);
  const b = await r.enqueue('master_to_standby', vars());
  assert.equal(b.ok, true);
  assert.equal(b.actions[0]!.attempts, 3);
  const c = await r.enqueue('to_fault', vars());
  assert.equal(c.ok, false);
  assert.equal(c.actions[0]!.attempts, 2);
  assert.match(c.stopped ?? '', /action 1 .* failed: exit 1/);
  assert.deepEqual(readFileSync(f, 'utf8').trim().split('\n'), ['ran', 'try', 'try', 'try', 'after', 't', 't']);
}));

test('the master guard stops master-only actions once the lease is gone', withDir(async (dir) => {
  const f = join(dir, 'g');
  let master = true;
  const r = runner({ standby_to_master: [run(`echo one >> ${f}`), run(`echo two >> ${f}`)] });
  const res = await r.enqueue('standby_to_master', vars(), () => { const m = master; master = false; return m; });
  assert.equal(res.ok, false);
  assert.match(res.stopped ?? '', /no longer master/);
  assert.deepEqual(readFileSync(f, 'utf8').trim().split('\n'), ['one']);
}));

test('output is captured, bounded', async () => {
  const r = await runCommand(`head -c ${OUTPUT_LIMIT * 3} /dev/zero | tr '\\0' x; echo err >&2`, { timeoutMs: 5000, env: {} });
  assert.equal(r.ok, true);
  assert.equal(r.stdout.length, OUTPUT_LIMIT);
  assert.equal(r.truncated, OUTPUT_LIMIT * 2);
  assert.equal(r.stderr, 'err\n');
});
