/**
 * Page-cache memory for the filesync benchmarks on a VM: each timed side starts with warm memory
 * and a quiet disk, so neither pays the host's page faults or the writeback the other caused.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Same start for both sides: memory for the receiver's page cache made warm, then dirty pages
 * written back so the timed part starts from a quiet disk.
 * Why warm: on a VM with free page reporting (virtio-balloon), memory the guest freed goes back
 * to the host within seconds, and the next page-cache write into it faults on the host: 1 GiB
 * written in 1.8 s "cold" vs 0.26 s right after the same amount was freed. Without this, whoever
 * runs right after the other side's cleanup gets warm pages (rsync did, in this script's order).
 * A scratch file of `bytes` (the data set plus a margin) is written and removed just before.
 */
export async function settle(bytes: number): Promise<void> {
  const scratch = join(tmpdir(), `multiall-fsbench-warm-${process.pid}`);
  const fh = await open(scratch, 'w');
  try {
    const chunk = Buffer.alloc(8 << 20);
    for (let off = 0; off < bytes; off += chunk.length) await fh.write(chunk, 0, chunk.length, off);
  } finally {
    await fh.close();
    await rm(scratch, { force: true });
  }
  await run('sync');
}
/**
 * Free page reporting hands memory the guest freed back to the host at once (min_free_ms 0 on
 * this VM), so the warm-up of settle() would stay warm only for whoever is quick. Unless a script's --no-hold,
 * freed memory is kept in the guest for 5 minutes during the run (restored at exit): every
 * side then writes its page cache into warm memory, as on a server without a balloon.
 */
const HOLD = '/sys/module/page_reporting/parameters/min_free_ms';
export function holdFreedMemory(): void {
  let before: string;
  try {
    before = readFileSync(HOLD, 'utf8').trim();
    writeFileSync(HOLD, '300000'); // the largest value this kernel accepts is below 600000
  } catch {
    return; // not a VM with free page reporting, or not root
  }
  console.error(`holding freed memory in the guest during the run (${HOLD} ${before} → 300000)`);
  const restore = (): void => writeFileSync(HOLD, before);
  process.on('exit', restore);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
}
