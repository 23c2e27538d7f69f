/** File check: existence, age (now - mtime) and size of one path (async stat). */
import { stat } from 'node:fs/promises';
import type { Check, Observation } from '../types.ts';
import { formatDuration, formatSize } from '../units.ts';

export class FileCheck implements Check {
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
  }

  async run(): Promise<Observation> {
    try {
      const st = await stat(this.#path);
      const age = Math.max(0, Date.now() - st.mtimeMs);
      return { values: { missing: false, age, size: st.size }, output: `${this.#path}: ${formatSize(st.size)}, modified ${formatDuration(age)} ago` };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      // Like Nagios check_file_age: a missing file fails age/size conditions too.
      return { values: { missing: true }, output: `${this.#path} does not exist`, failed: `${this.#path} does not exist` };
    }
  }
}
