/**
 * Guards that pause a tree instead of propagating a disaster:
 * - tree root guard: the root must exist, be a directory, be on the device recorded at first
 *   sync and contain the marker file `.multiall-tree` with the recorded tree id; otherwise an
 *   unmounted disk or a wrong mount would look like "everything deleted" (syncthing#799).
 * - mass-delete guard: a change set deleting more than maxPercent of a tree's entries (and at
 *   least minDeletes entries), or every entry of a tree of 2+ entries, is held for an admin.
 * - nested mounts: mountsUnder() lists the filesystems mounted inside a tree, so that one that
 *   is gone (unmounted) is not taken for its content deleted (treesync.ts).
 */
import { open, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { FileSyncError } from './errors.ts';

export const TREE_MARKER = '.multiall-tree';

export interface TreeIdentity {
  treeId: string;
  /** st_dev of the root at first sync, as a decimal string. */
  dev: string;
}

export type TreeCheck =
  | { ok: true }
  | { ok: false; reason: 'root-missing' | 'not-a-directory' | 'marker-missing' | 'marker-invalid' | 'other-tree' | 'other-device'; message: string };

interface MarkerBody {
  treeId: string;
  createdBy: string;
  createdAt: string;
}

async function readMarker(root: string): Promise<MarkerBody | 'missing' | 'invalid'> {
  let text: string;
  try {
    text = await readFile(join(root, TREE_MARKER), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<MarkerBody>;
    return typeof v.treeId === 'string' ? (v as MarkerBody) : 'invalid';
  } catch {
    return 'invalid';
  }
}

/**
 * First sync of a tree on this node: writes the marker (if absent) and returns the identity to
 * record in local state. Refuses a root whose existing marker names another tree.
 */
export async function initTree(root: string, treeId: string, node: string): Promise<TreeIdentity> {
  const st = await stat(root).catch(() => null);
  if (st === null || !st.isDirectory()) throw new FileSyncError('E_TREE_ROOT', `tree root ${root} is missing or not a directory`);
  const existing = await readMarker(root);
  if (existing === 'invalid') throw new FileSyncError('E_TREE_ROOT', `${join(root, TREE_MARKER)} is not a valid marker`);
  if (existing !== 'missing' && existing.treeId !== treeId) {
    throw new FileSyncError('E_TREE_ROOT', `${root} is marked as tree ${JSON.stringify(existing.treeId)}, not ${JSON.stringify(treeId)}`);
  }
  if (existing === 'missing') {
    const body: MarkerBody = { treeId, createdBy: node, createdAt: new Date().toISOString() };
    const fh = await open(join(root, TREE_MARKER), 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(body) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  return { treeId, dev: String((await stat(root, { bigint: true })).dev) };
}

/** Checks the root against the identity recorded at first sync. Run before every apply. */
export async function checkTree(root: string, expected: TreeIdentity): Promise<TreeCheck> {
  const st = await stat(root, { bigint: true }).catch(() => null);
  if (st === null) return { ok: false, reason: 'root-missing', message: `tree root ${root} does not exist` };
  if (!st.isDirectory()) return { ok: false, reason: 'not-a-directory', message: `tree root ${root} is not a directory` };
  const marker = await readMarker(root);
  if (marker === 'missing') return { ok: false, reason: 'marker-missing', message: `${join(root, TREE_MARKER)} is missing (filesystem not mounted?)` };
  if (marker === 'invalid') return { ok: false, reason: 'marker-invalid', message: `${join(root, TREE_MARKER)} is not a valid marker` };
  if (marker.treeId !== expected.treeId) return { ok: false, reason: 'other-tree', message: `${root} holds tree ${marker.treeId}, expected ${expected.treeId}` };
  if (String(st.dev) !== expected.dev) return { ok: false, reason: 'other-device', message: `${root} is on device ${st.dev}, recorded ${expected.dev} (remounted or replaced?)` };
  return { ok: true };
}

export interface MassDeletePolicy {
  /** Pause when deletes exceed this share of the tree's entries (0..100). Default 50. */
  maxPercent?: number;
  /** ...and number at least this many (small trees may lose a few files). Default 10. */
  minDeletes?: number;
}

export type MassDeleteCheck = { ok: true } | { ok: false; message: string };

export function checkMassDelete(treeEntries: number, deletes: number, policy: MassDeletePolicy = {}): MassDeleteCheck {
  const maxPercent = policy.maxPercent ?? 50;
  const minDeletes = policy.minDeletes ?? 10;
  if (!Number.isInteger(treeEntries) || !Number.isInteger(deletes) || treeEntries < 0 || deletes < 0 || maxPercent < 0 || maxPercent > 100) {
    throw new FileSyncError('E_ARG', `bad mass-delete inputs: entries=${treeEntries} deletes=${deletes} maxPercent=${maxPercent}`);
  }
  if (treeEntries >= 2 && deletes >= treeEntries) {
    return { ok: false, message: `change set deletes all ${treeEntries} entries of the tree` };
  }
  if (deletes >= minDeletes && deletes * 100 > maxPercent * treeEntries) {
    return { ok: false, message: `change set deletes ${deletes} of ${treeEntries} entries (> ${maxPercent}%)` };
  }
  return { ok: true };
}

/**
 * Mount points strictly inside `root` (tree-relative paths), from /proc/self/mountinfo (field
 * 5, with octal escapes for space, tab, newline and backslash). Empty where that file is missing.
 */
export async function mountsUnder(root: string, mountinfo = '/proc/self/mountinfo'): Promise<string[]> {
  const [text, real] = await Promise.all([readFile(mountinfo, 'utf8').catch(() => ''), realpath(root).catch(() => null)]);
  if (real === null) return [];
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const rel = relative(real, point);
    if (rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep)) out.add(rel.split(sep).join('/'));
  }
  return [...out].sort();
}

