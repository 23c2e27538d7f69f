/**
 * A gitignore(5)-compatible pattern matcher for the include/exclude lists of a synced tree.
 * Supports: `#` comments, blank lines, `\` escapes, trailing-space trimming, `!` negation
 * (last matching rule wins), trailing `/` (directories only), anchoring (a `/` at the start or
 * middle anchors the pattern to the tree root; otherwise it matches at any depth), `*`, `?`,
 * `[...]` classes (ranges, `!`/`^` negation, `[:alpha:]`-style POSIX classes), and `**`
 * (`**\/x`, `x/**`, `a/**\/b`). Wildcards never match `/`. Like git, a path inside an excluded
 * directory stays excluded even if a later `!` rule matches the path itself.
 * Paths are relative POSIX paths without leading or trailing `/`.
 */
import { FileSyncError } from '../errors.ts';

export interface Rule {
  source: string;
  negate: boolean;
  dirOnly: boolean;
  regex: RegExp;
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: 'a-zA-Z0-9',
  alpha: 'a-zA-Z',
  blank: ' \\t',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '!-\\/:-@\\[-`{-~',
  space: ' \\t\\n\\r\\f\\v',
  upper: 'A-Z',
  xdigit: '0-9a-fA-F',
};

const escapeRe = (c: string): string => (/[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c);
const escapeClass = (c: string): string => (/[\\\]^[-]/.test(c) ? `\\${c}` : c);

/** Translates a `[...]` class starting at pat[i] === '['; null if it is not closed. */
function translateClass(pat: string, i: number): { re: string; end: number } | null {
  let j = i + 1;
  let negate = false;
  if (pat[j] === '!' || pat[j] === '^') {
    negate = true;
    j++;
  }
  let body = '';
  let first = true;
  for (; j < pat.length; j++) {
    const c = pat[j]!;
    if (c === ']' && !first) {
      // Only inverted ranges (e.g. [z-a]): git matches nothing with them.
      if (body === '') return { re: negate ? '[^/]' : '(?!)', end: j };
      // Wildcards never match '/', even a negated class.
      return { re: negate ? `[^${body}/]` : `(?!/)[${body}]`, end: j };
    }
    first = false;
    if (c === '[' && pat[j + 1] === ':') {
      const close = pat.indexOf(':]', j + 2);
      const name = close < 0 ? '' : pat.slice(j + 2, close);
      const cls = POSIX_CLASSES[name];
      if (cls === undefined) throw new FileSyncError('E_PATTERN', `unknown character class [:${name}:] in ${JSON.stringify(pat)}`);
      body += cls;
      j = close + 1;
      continue;
    }
    let lo = c;
    if (c === '\\') {
      j++;
      if (j >= pat.length) return null;
      lo = pat[j]!;
    }
    if (pat[j + 1] === '-' && pat[j + 2] !== undefined && pat[j + 2] !== ']') {
      let hi = pat[j + 2]!;
      j += 2;
      if (hi === '\\') {
        j++;
        if (j >= pat.length) return null;
        hi = pat[j]!;
      }
      // An inverted range matches nothing in git; keep that instead of a RegExp syntax error.
      body += lo.codePointAt(0)! <= hi.codePointAt(0)! ? `${escapeClass(lo)}-${escapeClass(hi)}` : '';
      continue;
    }
    body += escapeClass(lo);
  }
  return null;
}

/** Glob body → RegExp source (without anchors). */
function translate(pat: string): string {
  let re = '';
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i]!;
    if (c === '\\') {
      i++;
      if (i >= pat.length) throw new FileSyncError('E_PATTERN', `trailing backslash in ${JSON.stringify(pat)}`);
      re += escapeRe(pat[i]!);
    } else if (c === '*') {
      let k = i;
      while (pat[k + 1] === '*') k++;
      const atSegStart = i === 0 || pat[i - 1] === '/';
      const atSegEnd = k + 1 === pat.length || pat[k + 1] === '/';
      if (k > i && atSegStart && atSegEnd) {
        if (k + 1 === pat.length) re += '.*';
        else {
          re += '(?:.*/)?'; // "**/": zero or more directories
          k++; // consume the '/'
        }
      } else {
        re += '[^/]*';
      }
      i = k;
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const cls = translateClass(pat, i);
      // git's wildmatch silently matches nothing here; an error tells the admin why.
      if (cls === null) throw new FileSyncError('E_PATTERN', `unclosed [ in ${JSON.stringify(pat)}`);
      re += cls.re;
      i = cls.end;
    } else {
      re += escapeRe(c);
    }
  }
  return re;
}

/** Parses one gitignore line; null for blank lines and comments. */
export function parseRule(line: string): Rule | null {
  let p = line.replace(/\r$/, '');
  // Trailing spaces are dropped unless escaped.
  p = p.replace(/(?<!\\)((?:\\\\)*) +$/, '$1');
  if (p === '' || p.startsWith('#')) return null;
  let negate = false;
  if (p.startsWith('!')) {
    negate = true;
    p = p.slice(1);
  }
  let dirOnly = false;
  if (p.endsWith('/') && !p.endsWith('\\/')) {
    dirOnly = true;
    p = p.slice(0, -1);
  }
  if (p === '') return null;
  const anchored = p.includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  const body = translate(p);
  const src = anchored ? `^${body}$` : `^(?:.*/)?${body}$`;
  let regex: RegExp;
  try {
    regex = new RegExp(src, 'su');
  } catch (err) {
    throw new FileSyncError('E_PATTERN', `cannot compile ${JSON.stringify(line)}: ${(err as Error).message}`);
  }
  return { source: line, negate, dirOnly, regex };
}

export class IgnoreMatcher {
  readonly rules: readonly Rule[];

  constructor(lines: readonly string[]) {
    const rules: Rule[] = [];
    for (const l of lines) {
      for (const sub of l.split('\n')) {
        const r = parseRule(sub);
        if (r !== null) rules.push(r);
      }
    }
    this.rules = rules;
  }

  /** The verdict of the last rule matching this path itself: true/false, or undefined if none. */
  match(path: string, isDir: boolean): boolean | undefined {
    for (let i = this.rules.length - 1; i >= 0; i--) {
      const r = this.rules[i]!;
      if (r.dirOnly && !isDir) continue;
      if (r.regex.test(path)) return !r.negate;
    }
    return undefined;
  }

  /** Full gitignore semantics, including "inside an excluded directory". */
  ignores(path: string, isDir: boolean): boolean {
    return this.insideIgnoredDir(path) || this.match(path, isDir) === true;
  }

  /** Whether one of the directories `path` lies in is excluded. */
  insideIgnoredDir(path: string): boolean {
    for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
      if (this.match(path.slice(0, slash), true) === true) return true;
    }
    return false;
  }
}
