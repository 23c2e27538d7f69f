/**
 * Ownership with agents that are not root (real agents: o1 is root, o2 runs as `nobody`, o3 as
 * `nobody` with CAP_CHOWN + CAP_FOWNER). Owners are applied only with those capabilities (root
 * has them). o2 stores received files under its own user (it cannot chown) without failing, and
 * its edits do not hand the other nodes' files to its user: the version keeps the owner. A file
 * it creates reports the owner it has there. o3 applies and follows owners like root.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canRunAgentAs, waitFor } from '../../src/harness/cluster.ts';
import type { Cluster } from '../../src/harness/cluster.ts';
import { treeCluster } from './files-cluster.ts';

/** The `nobody` account from /etc/passwd (uid and gid), if there is one. */
function nobody(): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
  const [uid, gid] = (line?.split(':') ?? []).slice(2, 4).map(Number);
  return uid !== undefined && gid !== undefined && uid > 0 && gid > 0 ? { uid, gid } : undefined;
}
const NOBODY = nobody() ?? { uid: -1, gid: -1 };
const skip = process.getuid?.() !== 0 || NOBODY.uid <= 0 ? 'needs root and a nobody account to run one agent as another user'
  : !canRunAgentAs(NOBODY) ? 'nobody cannot read this checkout or its Node binary (a parent directory is private)' : false;
const root = skip === false;
const dir = mkdtempSync(join(tmpdir(), 'multiall-owner-'));
const tree = (n: string) => join(dir, `${n}-data`);
let c: Cluster | undefined;

before(async () => {
  if (!root) return;
  chmodSync(dir, 0o755); // the non-root agent must reach its directories
  c = await treeCluster(dir, 'own', ['o1', 'o2', 'o3'], { name: 'data', debounce: '200ms', scan_interval: '5s' }, tree, { runAs: { o2: NOBODY, o3: { ...NOBODY, caps: ['chown', 'fowner'] } } });
});
after(async () => {
  await c?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const content = (n: string, f: string) => (existsSync(join(tree(n), f)) ? readFileSync(join(tree(n), f), 'utf8') : null);
const owner = (n: string, f: string) => { const st = statSync(join(tree(n), f)); return `${st.uid}:${st.gid}`; };

test('a non-root agent keeps files under its own user and never spreads it; root and CAP_CHOWN agents keep the owner', { skip }, async () => {
  // The tree root of the non-root node belongs to its user (created before the agent started).
  const nb = `${NOBODY.uid}:${NOBODY.gid}`;
  assert.equal(owner('o2', '.'), nb);
  writeFileSync(join(tree('o1'), 'f.txt'), 'v1');
  chownSync(join(tree('o1'), 'f.txt'), 1234, 1234);
  await waitFor(() => content('o2', 'f.txt') === 'v1' && content('o3', 'f.txt') === 'v1', 'f.txt on o2 and o3', 30_000);
  assert.equal(owner('o2', 'f.txt'), nb, 'o2 could not chown: the file is its user\'s');
  assert.equal(owner('o3', 'f.txt'), '1234:1234', 'o3 (CAP_CHOWN) applied the owner');
  // An edit on o2 (in place, so still its user's) reaches o1 without changing o1's owner.
  writeFileSync(join(tree('o2'), 'f.txt'), 'v2 from o2');
  await waitFor(() => content('o1', 'f.txt') === 'v2 from o2' && content('o3', 'f.txt') === 'v2 from o2', 'o2\'s edit on o1 and o3', 30_000);
  assert.equal(owner('o1', 'f.txt'), '1234:1234', 'the owner stays what root set, not o2\'s agent user');
  assert.equal(owner('o3', 'f.txt'), '1234:1234');
  // A file created on o2 by its user: o1, as root, gives it that owner.
  writeFileSync(join(tree('o2'), 'g.txt'), 'from o2');
  chownSync(join(tree('o2'), 'g.txt'), NOBODY.uid, NOBODY.gid);
  await waitFor(() => content('o1', 'g.txt') === 'from o2', 'g.txt on o1', 30_000);
  assert.equal(owner('o1', 'g.txt'), nb);
  // o1 changes the owner (as root): o2 cannot follow, and nothing fails or flips back.
  chownSync(join(tree('o1'), 'g.txt'), 4321, 4321);
  writeFileSync(join(tree('o1'), 'h.txt'), 'marker after the chown');
  await waitFor(() => content('o2', 'h.txt') === 'marker after the chown', 'h.txt on o2', 30_000);
  await waitFor(() => existsSync(join(tree('o3'), 'g.txt')) && owner('o3', 'g.txt') === '4321:4321', 'o3 follows the chown', 30_000);
  const st = await c!.cli('o2', ['files', 'status', 'data', '--json']);
  const peers = (JSON.parse(st.stdout) as { peers: { lastError: string | null }[] }[])[0]!.peers;
  assert.deepEqual(peers.map((p) => p.lastError), [null, null], 'no apply failures on the non-root node');
  assert.equal(owner('o1', 'g.txt'), '4321:4321');
  assert.equal(owner('o2', 'g.txt'), nb);
});
