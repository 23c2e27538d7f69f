/** `multiall ca init|issue`, `multiall keygen`, `multiall token create`. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { initCa, issueNodeCert } from '../security/ca.ts';
import { generateGossipKey, writeKeyring } from '../security/gossipkey.ts';
import { generateToken } from '../security/tokens.ts';
import { CliExit, EXIT } from './main.ts';

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliExit(EXIT.usage, `multiall: ${what} must be a positive integer, got '${v}'`);
  return n;
}

export function registerSecurityCommands(program: Command): void {
  const ca = program.command('ca').description("manage the pool's certificate authority");
  ca.command('init')
    .requiredOption('--dir <dir>', 'directory for ca.crt and ca.key (ca.key is mode 0600: keep it off the fleet)')
    .option('--name <cn>', 'CA common name', 'MultiAll pool CA')
    .option('--days <n>', 'validity in days', '3650')
    .option('--force', 'overwrite an existing CA (every node certificate must then be reissued)')
    .option('--json', 'print JSON')
    .description('create a new pool CA')
    .action(async (o: { dir: string; name: string; days: string; force?: boolean; json?: boolean }) => {
      const r = await initCa(o.dir, { commonName: o.name, days: positiveInt(o.days, '--days'), force: Boolean(o.force) });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `CA certificate: ${r.certPath}\nCA key:         ${r.keyPath} (secret)\n`);
    });
  ca.command('issue')
    .argument('<node>', 'node name (goes into the certificate SAN; must match node.name)')
    .requiredOption('--ca-dir <dir>', 'directory of the CA (from ca init)')
    .requiredOption('--out <dir>', 'where to write node.crt, node.key and ca.crt')
    .option('--ip <addr...>', 'IP addresses to add to the SAN')
    .option('--days <n>', 'validity in days', '825')
    .option('--json', 'print JSON')
    .description('issue a node certificate signed by the pool CA')
    .action(async (node: string, o: { caDir: string; out: string; ip?: string[]; days: string; json?: boolean }) => {
      if (!existsSync(o.caDir)) throw new CliExit(EXIT.usage, `multiall ca issue: CA directory ${o.caDir} does not exist (run multiall ca init first)`);
      const r = await issueNodeCert(o.caDir, node, o.out, { ips: o.ip ?? [], days: positiveInt(o.days, '--days') });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `certificate: ${r.certPath}\nkey:         ${r.keyPath} (secret)\nCA:          ${r.caPath}\n`);
    });

  program
    .command('keygen')
    .option('--out <file>', 'write a keyring file (mode 0600) with the new key as primary instead of printing the key')
    .description('generate a gossip encryption key (AES-256, base64)')
    .action(async (o: { out?: string }) => {
      const key = generateGossipKey();
      if (o.out) {
        if (existsSync(o.out)) throw new CliExit(EXIT.failed, `multiall keygen: ${o.out} exists; use 'multiall keys install' to add a key to a live keyring`);
        await writeKeyring(o.out, { primary: key, keys: [key] });
        process.stdout.write(`keyring written to ${o.out}\n`);
      } else process.stdout.write(key + '\n');
    });

  const token = program.command('token').description('local API tokens');
  token
    .command('create')
    .requiredOption('--name <name>', 'token name (shown in logs)')
    .option('--role <role>', 'read or operator', 'read')
    .option('--json', 'print JSON')
    .description('make a bearer token: prints the secret once and the config entry (which holds only its sha256)')
    .action((o: { name: string; role: string; json?: boolean }) => {
      if (o.role !== 'read' && o.role !== 'operator') throw new CliExit(EXIT.usage, `multiall token create: --role must be read or operator, got '${o.role}'`);
      const t = generateToken();
      if (o.json) process.stdout.write(JSON.stringify({ name: o.name, role: o.role, secret: t.secret, sha256: t.sha256 }) + '\n');
      else process.stdout.write(`secret (shown once): ${t.secret}\nadd to api.tokens:\n  - { name: ${o.name}, role: ${o.role}, sha256: ${t.sha256} }\n`);
    });
}
