/**
 * Benchmark (not a test): 1-byte edit in the middle of a generated 64 MiB file.
 * Run: node test/filesync/bench-delta.ts [sizeMiB]
 * Prints signature and delta throughput (unchanged and fully-changed data), ops bytes on the
 * wire vs file size, and patch throughput. Also times `rsync --no-whole-file` if installed.
 */
import { writeFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { signature, delta, patch, encodeDeltaOp, encodeSignature } from '../../src/filesync/delta/index.ts';
import type { DeltaOp } from '../../src/filesync/delta/index.ts';
import { pseudoRandom } from './helpers.ts';

const mib = Number(process.argv[2] ?? 64);
const size = mib * 1024 * 1024;
const dir = await mkdtemp(join(tmpdir(), 'multiall-bench-'));
const mbps = (bytes: number, ms: number): string => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
try {
  const basis = pseudoRandom(size, 42);
  const edited = Buffer.from(basis);
  edited[size >> 1] = edited[size >> 1]! ^ 0x5a;
  await writeFile(join(dir, 'basis'), basis);
  await writeFile(join(dir, 'new'), edited);
  await writeFile(join(dir, 'other'), pseudoRandom(size, 43));

  let t = performance.now();
  const sig = await signature(join(dir, 'basis'));
  const sigMs = performance.now() - t;
  const sigBytes = encodeSignature(sig).length;

  const run = async (file: string): Promise<{ ms: number; ops: DeltaOp[]; wire: number }> => {
    const t0 = performance.now();
    const ops: DeltaOp[] = [];
    let wire = 0;
    for await (const op of delta(sig, file)) {
      ops.push(op);
      wire += encodeDeltaOp(op).length;
    }
    return { ms: performance.now() - t0, ops, wire };
  };
  const same = await run(join(dir, 'basis'));
  const edit = await run(join(dir, 'new'));
  const diff = await run(join(dir, 'other'));
  t = performance.now();
  await patch(join(dir, 'basis'), edit.ops, join(dir, 'out'), sig);
  const patchMs = performance.now() - t;

  console.log(`file ${mib} MiB, block ${sig.blockSize} B, ${sig.weak.length} blocks`);
  console.log(`signature: ${mbps(size, sigMs)}, encoded ${sigBytes} B (${((sigBytes / size) * 100).toFixed(3)}% of file)`);
  console.log(`delta unchanged file: ${mbps(size, same.ms)}, ${same.ops.length} ops, ${same.wire} B on the wire`);
  console.log(`delta 1-byte edit:    ${mbps(size, edit.ms)}, ${edit.ops.length} ops, ${edit.wire} B on the wire (${((edit.wire / size) * 100).toFixed(4)}% of file)`);
  console.log(`delta all-different:  ${mbps(size, diff.ms)} (byte-by-byte rolling), ${diff.wire} B on the wire`);
  console.log(`patch 1-byte edit: ${mbps(size, patchMs)} (incl. fsync + rename), output ${(await stat(join(dir, 'out'))).size} B`);

  const rs = spawnSync('rsync', ['--version']);
  if (rs.status === 0) {
    // rsync over a local pipe with delta forced: same edit, same machine.
    await writeFile(join(dir, 'dst'), basis);
    const t1 = performance.now();
    const r = spawnSync('rsync', ['--no-whole-file', '--stats', '-I', join(dir, 'new'), join(dir, 'dst')], { encoding: 'utf8' });
    const rsMs = performance.now() - t1;
    const sent = /Total bytes sent: ([\d,]+)/.exec(r.stdout)?.[1];
    console.log(`rsync --no-whole-file (local, whole run): ${rsMs.toFixed(0)} ms, bytes sent ${sent ?? '?'}`);
  } else {
    console.log('rsync not installed: no side-by-side figure');
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
