/**
 * Names of conflict copies: `dir/name.conflict-<NODE>-<YYYYMMDD-HHMMSS>.ext`, where NODE is the
 * node that made the losing change and the time is the loser's mtime in UTC. Both inputs come
 * from the loser's version record, so every node resolving the same conflict picks the same
 * name (their copies then merge silently instead of multiplying).
 */

const MAX_NAME_BYTES = 255;

function stamp(mtimeNs: bigint): string {
  const d = new Date(Number(mtimeNs / 1_000_000n));
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  if (Number.isNaN(d.getTime())) return '00000000-000000';
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** Splits "a.tar.gz" → ["a.tar", ".gz"]; dotfiles (".bashrc") and "x." have no extension. */
function splitExt(name: string): [string, string] {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) return [name, ''];
  return [name.slice(0, dot), name.slice(dot)];
}

export function conflictName(path: string, node: string, mtimeNs: bigint): string {
  const slash = path.lastIndexOf('/');
  const dir = slash < 0 ? '' : path.slice(0, slash + 1);
  const [base, ext] = splitExt(path.slice(slash + 1));
  // Node names become one safe token: no '/', no '.', bounded.
  const nodeTok = node.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || '_';
  const tag = `.conflict-${nodeTok}-${stamp(mtimeNs)}`;
  let b = base;
  // Keep the result within NAME_MAX by shortening the base name (by code points).
  while (b.length > 1 && Buffer.byteLength(b + tag + ext) > MAX_NAME_BYTES) b = [...b].slice(0, -1).join('');
  const e = Buffer.byteLength(b + tag + ext) > MAX_NAME_BYTES ? '' : ext;
  return `${dir}${b}${tag}${e}`;
}
