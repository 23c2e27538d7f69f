/**
 * Nagios plugin output (plugin API, "Plugin Output Spec"):
 *   TEXT [| PERFDATA]
 *   [LONG TEXT ...]
 *   [LONG TEXT | PERFDATA
 *    PERFDATA ...]
 * PERFDATA = space-separated 'label'=value[UOM];[warn];[crit];[min];[max]; labels may be single
 * quoted ('' is a quote inside). Parsing never throws: malformed perfdata items are skipped.
 */
import type { CheckStatus, PerfData } from '../types.ts';

export function exitStatus(code: number | null): CheckStatus {
  switch (code) {
    case 0: return 'OK';
    case 1: return 'WARNING';
    case 2: return 'CRITICAL';
    default: return 'UNKNOWN'; // 3, out-of-range codes and deaths by signal, as Nagios does
  }
}

export function parsePluginOutput(stdout: string): { text: string; longOutput: string; perfdata: PerfData[] } {
  const lines = stdout.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const first = lines[0] ?? '';
  const bar = first.indexOf('|');
  const text = (bar >= 0 ? first.slice(0, bar) : first).trim();
  const perfTexts: string[] = bar >= 0 ? [first.slice(bar + 1)] : [];
  const long: string[] = [];
  let inPerf = false;
  for (const line of lines.slice(1)) {
    if (inPerf) { perfTexts.push(line); continue; }
    const b = line.indexOf('|');
    if (b >= 0) { long.push(line.slice(0, b)); perfTexts.push(line.slice(b + 1)); inPerf = true; } else long.push(line);
  }
  return { text, longOutput: long.join('\n').trim(), perfdata: perfTexts.flatMap(parsePerfdata) };
}

const NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

export function parsePerfdata(s: string): PerfData[] {
  const out: PerfData[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
    if (i >= s.length) break;
    let label = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) return out; // unterminated quote: the rest is unusable
        if (s[i] === "'") {
          if (s[i + 1] === "'") { label += "'"; i += 2; continue; }
          i++;
          break;
        }
        label += s[i];
        i++;
      }
    } else {
      while (i < s.length && s[i] !== '=' && !/\s/.test(s[i] as string)) { label += s[i]; i++; }
    }
    let j = i;
    while (j < s.length && !/\s/.test(s[j] as string)) j++;
    const rest = s.slice(i, j);
    i = j;
    if (!rest.startsWith('=') || label === '') continue;
    const [valueUom = '', warn, crit, min, max] = rest.slice(1).split(';');
    const m = /^([-+]?[\d.]+(?:[eE][-+]?\d+)?)([a-zA-Z%]*)$/.exec(valueUom);
    if (!m || !NUMBER.test(m[1] as string)) continue; // includes 'U' (undetermined)
    const pd: PerfData = { label, value: Number(m[1]), uom: m[2] ?? '' };
    if (warn) pd.warn = warn;
    if (crit) pd.crit = crit;
    if (min && NUMBER.test(min)) pd.min = Number(min);
    if (max && NUMBER.test(max)) pd.max = Number(max);
    out.push(pd);
  }
  return out;
}
