/**
 * Byte accounting with iptables counters (same method for our agents and for serf) and process
 * CPU from /proc, for the membership comparison benchmark (compare.ts).
 *
 * One counting chain (no verdicts: packets fall through to the normal INPUT policy), jumped to
 * from INPUT. Per agent address, three rules count every gossip byte exactly once at the IP level
 * (headers, TCP handshakes and ACKs included):
 *   - UDP to ADDR:7946        (all gossip datagrams, which go port 7946 -> port 7946)
 *   - TCP to ADDR:7946        (push/pull, join, fallback pings: the initiator's side of a stream)
 *   - TCP from ADDR:7946      (the answering side of those streams)
 * Loopback packets traverse INPUT once, so summing a group's rules gives the group's total
 * gossip traffic; divided by N and seconds it is bytes per member per second.
 */
import { Cluster } from '../../src/harness/cluster.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const PORT = '7946';

export class IptablesAccounting {
  readonly chain: string;
  #installed = false;

  constructor() {
    this.chain = `MABENCH${process.pid}`.slice(0, 28);
  }

  /** Same requirement as the harness's partitions: root and a working iptables. */
  static available(): boolean {
    return Cluster.canPartition();
  }

  #ipt(args: string[]): string {
    return execFileSync('iptables', ['-w', ...args], { encoding: 'utf8' });
  }

  /** Adds counting rules for `group` (a label like "ours" or "serf") and its addresses. */
  add(group: string, addrs: string[]): void {
    if (!this.#installed) {
      this.#ipt(['-N', this.chain]);
      this.#ipt(['-I', 'INPUT', '-j', this.chain]);
      this.#installed = true;
    }
    for (const a of addrs) {
      this.#ipt(['-A', this.chain, '-d', a, '-p', 'udp', '--dport', PORT, '-m', 'comment', '--comment', `${group}:${a}:udp`]);
      this.#ipt(['-A', this.chain, '-d', a, '-p', 'tcp', '--dport', PORT, '-m', 'comment', '--comment', `${group}:${a}:tcpin`]);
      this.#ipt(['-A', this.chain, '-s', a, '-p', 'tcp', '--sport', PORT, '-m', 'comment', '--comment', `${group}:${a}:tcpout`]);
    }
  }

  /** Bytes so far per group, split udp / tcp. */
  read(): Map<string, { udp: number; tcp: number }> {
    const out = new Map<string, { udp: number; tcp: number }>();
    if (!this.#installed) return out;
    for (const line of this.#ipt(['-v', '-S', this.chain]).split('\n')) {
      const m = /--comment "?([^:"\s]+):[^:"\s]+:(udp|tcpin|tcpout)"? -c (\d+) (\d+)/.exec(line);
      if (!m) continue;
      const g = out.get(m[1] ?? '') ?? { udp: 0, tcp: 0 };
      if (m[2] === 'udp') g.udp += Number(m[4]);
      else g.tcp += Number(m[4]);
      out.set(m[1] ?? '', g);
    }
    return out;
  }

  cleanup(): void {
    if (!this.#installed) return;
    const quiet = (args: string[]): void => {
      try {
        execFileSync('iptables', ['-w', ...args], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    };
    quiet(['-D', 'INPUT', '-j', this.chain]);
    quiet(['-F', this.chain]);
    quiet(['-X', this.chain]);
    this.#installed = false;
  }
}

/** User+system CPU seconds of a process so far (0 if it is gone). */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** Resident set size in MiB (0 if gone). */
export function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
