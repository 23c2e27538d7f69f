/**
 * Built-in floating IP action: `ip addr add|del ADDRESS dev IF`, then (on add) a gratuitous ARP
 * with `arping -U -c 2 -I IF IP` so switches and neighbours learn the new owner at once. Both
 * directions are idempotent ("already there" on add and "not there" on del count as success),
 * because a demotion may run after a crash left the address half-configured. IPv6 addresses skip
 * arping (the kernel sends unsolicited neighbour advertisements itself on DAD completion).
 * When arping is not installed the address is still added and the result says so.
 *
 * Public interface: floatingIp, FloatingIpResult, arpingAvailable.
 * Depends on: ./exec.ts, `ip` (iproute2), optionally `arping` (iputils-arping).
 */
import { runCommand, type CommandResult } from './exec.ts';

export interface FloatingIpResult {
  ok: boolean;
  detail: string;
  steps: CommandResult[];
}

const TIMEOUT_MS = 5000;

let arpingCache: Map<string, Promise<boolean>> | undefined;

/** Whether `arping` can be run (in the namespace given by prefix). */
export function arpingAvailable(prefix: readonly string[] = []): Promise<boolean> {
  arpingCache ??= new Map();
  const key = prefix.join(' ');
  let p = arpingCache.get(key);
  if (p === undefined) {
    p = runCommand('command -v arping', { timeoutMs: TIMEOUT_MS, env: {}, prefix }).then((r) => r.ok);
    arpingCache.set(key, p);
  }
  return p;
}

/** Single-quote for /bin/sh (address and interface are schema-checked, this is belt and braces). */
function q(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

export async function floatingIp(op: 'add' | 'del', address: string, iface: string, prefix: readonly string[] = []): Promise<FloatingIpResult> {
  const steps: CommandResult[] = [];
  const r = await runCommand(`ip addr ${op} ${q(address)} dev ${q(iface)}`, { timeoutMs: TIMEOUT_MS, env: {}, prefix });
  steps.push(r);
  const msg = (r.stderr || r.error || '').trim();
  // "File exists" / "Address already assigned" (add), "Address not found" / "Cannot assign requested address" (del): already in the wanted state.
  const already = op === 'add' ? /File exists|already assigned/i.test(msg) : /Cannot assign requested address|Address not found/i.test(msg);
  if (!r.ok && !already) return { ok: false, detail: `ip addr ${op} ${address} dev ${iface} failed: ${msg || `exit ${r.exitCode}`}`, steps };
  const state = already ? `${address} already ${op === 'add' ? 'present' : 'absent'} on ${iface}` : `${op === 'add' ? 'added' : 'removed'} ${address} on ${iface}`;
  if (op === 'del') return { ok: true, detail: state, steps };
  const ip = address.split('/')[0] ?? address;
  if (ip.includes(':')) return { ok: true, detail: `${state}; IPv6: no gratuitous ARP (kernel announces)`, steps };
  if (!(await arpingAvailable(prefix))) {
    return { ok: true, detail: `${state}; arping not installed: no gratuitous ARP sent (neighbours learn the move when their ARP cache expires)`, steps };
  }
  const a = await runCommand(`arping -U -c 2 -I ${q(iface)} ${q(ip)}`, { timeoutMs: TIMEOUT_MS, env: {}, prefix });
  steps.push(a);
  // A failed announcement does not undo the address: it is a best-effort speed-up.
  return { ok: true, detail: a.ok ? `${state}; gratuitous ARP sent` : `${state}; arping failed: ${(a.stderr || a.error || '').trim()}`, steps };
}
