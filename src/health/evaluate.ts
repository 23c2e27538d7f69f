/**
 * Turns one check observation into the status of one cycle for a rule. A target that could not
 * be reached (`failed`) violates every condition about it — an http rule on `status != 200`
 * fires when the port is closed — because the rule guards the service, not the measurement.
 */
import type { CheckStatus, Condition, Observation, Rule } from './types.ts';
import { formatDuration, formatSize } from './units.ts';

export function formatValue(v: number, unit: Extract<Condition, { type: 'compare' }>['unit']): string {
  switch (unit) {
    case 'percent': return `${Math.round(v * 10) / 10}%`;
    case 'duration': return formatDuration(v);
    case 'size': return formatSize(v);
    default: return String(Math.round(v * 100) / 100);
  }
}

function compare(a: number, op: string, b: number): boolean {
  switch (op) {
    case '>': return a > b;
    case '>=': return a >= b;
    case '<': return a < b;
    case '<=': return a <= b;
    case '==': return a === b;
    default: return a !== b;
  }
}

export function evaluate(rule: Rule, obs: Observation): { status: CheckStatus; output: string } {
  const c = rule.condition;
  if (c.type === 'nagios') {
    if (!obs.nagios) return { status: 'UNKNOWN', output: `${obs.output} (no plugin result)` };
    return { status: obs.nagios.status, output: obs.output };
  }
  const bad: CheckStatus = rule.then === 'warning' ? 'WARNING' : 'CRITICAL';
  let violated: boolean;
  let why = '';
  if (c.type === 'flag') {
    violated = c.metric === 'fails' ? obs.failed !== undefined : obs.values[c.metric] === true;
  } else if (obs.failed !== undefined) {
    violated = true;
  } else if (c.type === 'compare') {
    const v = obs.values[c.metric];
    if (typeof v !== 'number') return { status: 'UNKNOWN', output: `${obs.output} (no ${c.metric} value)` };
    violated = compare(v, c.op, c.value);
    why = ` (${c.metric} ${formatValue(v, c.unit)} ${violated ? '' : 'not '}${c.op} ${formatValue(c.value, c.unit)})`;
  } else {
    const body = obs.values[c.metric];
    if (typeof body !== 'string') return { status: 'UNKNOWN', output: `${obs.output} (no ${c.metric})` };
    const hit = new RegExp(c.pattern).test(body);
    violated = c.op === '~' ? hit : !hit;
    why = ` (${c.metric} ${hit ? 'matches' : 'does not match'} /${c.pattern}/)`;
  }
  return { status: violated ? bad : 'OK', output: obs.output + why };
}
