/**
 * A throwaway OpenSSH server on 127.0.0.1 for the filesync benchmarks, so rsync can also run the
 * way admins sync between servers: over ssh (encrypted, like MultiAll's mTLS; lsyncd's `rsyncssh`
 * mode). Its host key, the client key and its config live in `base`; it accepts only that key,
 * for the current user. Needs `/usr/sbin/sshd` (Debian package openssh-server; not started as a
 * service here) and `ssh`. stop() kills it.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { childCpuMs } from './rsyncd.ts';

const run = promisify(execFile);
export const SSHD = '/usr/sbin/sshd';

export interface SshServer {
  /** The `rsync -e` command: ssh with the client key, to this server's port. */
  rsh: string;
  /** rsync destination for a local directory reached through this server. */
  target(dir: string): string;
  /** CPU time (ms) of the server's finished connections (sshd and the remote rsync) so far. */
  childCpuMs(): number;
  stop(): void;
}

export async function startSshd(base: string): Promise<SshServer> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found (Debian package openssh-server)`);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const key = (name: string): Promise<unknown> => run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(base, name)]);
  await Promise.all([key('ssh_host_key'), key('ssh_client_key')]);
  await run('cp', [join(base, 'ssh_client_key.pub'), join(base, 'authorized_keys')]);
  // Privilege separation directory that the Debian service would create.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);
  const conf = join(base, 'sshd_config');
  await writeFile(conf, [
    'ListenAddress 127.0.0.1', `Port ${port}`, `HostKey ${join(base, 'ssh_host_key')}`,
    `AuthorizedKeysFile ${join(base, 'authorized_keys')}`, 'PermitRootLogin prohibit-password',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no',
    // The bench's temp directory is not owned the way StrictModes wants.
    'StrictModes no', 'PidFile none', 'LogLevel ERROR', '',
  ].join('\n'));
  const daemon = spawn(SSHD, ['-D', '-e', '-f', conf], { stdio: 'ignore' });
  const ssh = ['ssh', '-p', String(port), '-i', join(base, 'ssh_client_key'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes'];
  const user = userInfo().username;
  const end = Date.now() + 10_000;
  while (!(await run(ssh[0]!, [...ssh.slice(1), `${user}@127.0.0.1`, 'true']).then(() => true, () => false))) {
    if (Date.now() > end || daemon.exitCode !== null) {
      daemon.kill();
      throw new Error('sshd did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    rsh: ssh.join(' '),
    target: (dir) => `${user}@127.0.0.1:${dir}/`,
    childCpuMs: () => childCpuMs(daemon.pid!),
    stop: () => void daemon.kill(),
  };
}
