/**
 * Process-wide V8 settings for the agent daemon, applied once before it starts.
 * Bulk transfers (file sync, image distribution) allocate their network and file buffers
 * outside the JS heap. By default V8 starts a full mark-compact every 64 MB of such external
 * memory, whatever the heap's size: at 300 MB/s that is five per second per side of a
 * transfer (measured: 90 full GCs for 1 GB, ~20 % of both processes' CPU). Counting external
 * memory in V8's global limit instead lets the limit grow with what the process really keeps:
 * 37 full GCs for the same gigabyte, 25–35 % less CPU, the same memory kept between transfers.
 */
import { setFlagsFromString } from 'node:v8';

let applied = false;

export function tuneRuntime(): void {
  if (applied) return;
  applied = true;
  // The flag exists from V8 13 (Node.js 24) on; older V8s print an error for unknown flags.
  if (Number(process.versions.v8.split('.')[0]) >= 13) setFlagsFromString('--external-memory-accounted-in-global-limit');
}
