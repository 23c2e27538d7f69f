/** Disk check: space and inode usage of the filesystem holding a path (fs.statfs, like df). */
import { statfs } from 'node:fs/promises';
import type { Check, Observation } from '../types.ts';
import { formatSize } from '../units.ts';

export class DiskCheck implements Check {
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
  }

  async run(): Promise<Observation> {
    const s = await statfs(this.#path);
    // df's formula: used / (used + available to unprivileged users), so the root reserve counts as full.
    const used = s.blocks - s.bfree;
    const denom = used + s.bavail;
    const usage = denom > 0 ? Math.round((used / denom) * 1000) / 10 : 0;
    // Some filesystems (btrfs, overlay on some kernels) report no inode limit: files = 0.
    const inodes = s.files > 0 ? Math.round(((s.files - s.ffree) / s.files) * 1000) / 10 : 0;
    return {
      values: { usage, inodes },
      output: `${this.#path}: ${usage}% used (${formatSize(used * s.bsize)} of ${formatSize(denom * s.bsize)}), inodes ${s.files > 0 ? `${inodes}%` : 'not limited'}`,
    };
  }
}
