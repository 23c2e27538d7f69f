/** Builds the check implementation for a rule's params. */
import type { Check, Rule } from '../types.ts';
import { CommandCheck } from './command.ts';
import { MysqlCheck, PostgresCheck } from './dbprobe.ts';
import { DiskCheck } from './disk.ts';
import { FileCheck } from './file.ts';
import { DnsCheck, HttpCheck, TcpCheck } from './net.ts';
import { ProcessCheck } from './process.ts';
import { CpuCheck, LoadCheck, MemoryCheck } from './system.ts';

export function createCheck(rule: Rule): Check {
  const p = rule.params;
  switch (p.kind) {
    case 'disk': return new DiskCheck(p.path);
    case 'load': return new LoadCheck();
    case 'cpu': return new CpuCheck();
    case 'memory': return new MemoryCheck('memory');
    case 'swap': return new MemoryCheck('swap');
    case 'process': {
      const o: { name?: string; match?: string; pidfile?: string } = {};
      if (p.name !== undefined) o.name = p.name;
      if (p.match !== undefined) o.match = p.match;
      if (p.pidfile !== undefined) o.pidfile = p.pidfile;
      return new ProcessCheck(o);
    }
    case 'tcp': return new TcpCheck(p.host, p.port);
    case 'http': return new HttpCheck(p.url, p.method);
    case 'dns': return new DnsCheck(p.name, p.server, p.port, p.type, rule.timeoutMs ?? 5000);
    case 'file': return new FileCheck(p.path);
    case 'postgres': return new PostgresCheck(p.host, p.port, p.user, p.database);
    case 'mysql': return new MysqlCheck(p.host, p.port);
    case 'command': return new CommandCheck(p.command);
  }
}
