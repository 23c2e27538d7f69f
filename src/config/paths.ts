/** Dotted config paths ("pools[1].members[0]") and "did you mean" suggestions. */

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** One object key as a path step: `.key`, or `["odd key"]` when it is not a plain identifier. */
export function keySegment(key: string): string {
  return PLAIN_KEY.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/** `['pools', 1, 'members', 0]` → `pools[1].members[0]`; the empty path is ''. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : keySegment(seg);
  return out.startsWith('.') ? out.slice(1) : out;
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] as number;
}

const normalize = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');

/**
 * The candidate `word` was most likely meant as, or undefined when none is close: same letters
 * ignoring case, '-' and '_' (rpcPort → rpc_port), or within an edit distance of about a third of
 * the word's length.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const n = normalize(word);
  const same = candidates.find((c) => normalize(c) === n);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, normalize(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(Math.max(word.length, 3) / 3));
  if (bestDistance <= limit) return best;
  // One is the start of the other (warning → warn, member → members).
  if (n.length >= 3) return candidates.find((c) => normalize(c).startsWith(n) || n.startsWith(normalize(c)));
  return undefined;
}
