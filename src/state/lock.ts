/**
 * One agent per state directory. The lock file holds the owner's pid; a lock left by a process
 * that no longer exists (kill -9, crash) is taken over, a live owner makes the start fail.
 */
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, mkdirSync, constants } from 'node:fs';
import { join } from 'node:path';

export class LockError extends Error {}

export interface StateLock {
  path: string;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireLock(dataDir: string): StateLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'agent.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        path,
        release: () => {
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
      } catch {
        // unreadable or vanished: treat as stale
      }
      if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) {
        throw new LockError(
          `another agent (pid ${owner}) is already running on state directory ${dataDir} (lock file ${path})`,
        );
      }
      try {
        unlinkSync(path); // stale lock from a dead process
      } catch {
        // someone else removed it first; retry the exclusive create
      }
    }
  }
  throw new LockError(`could not take the lock ${path}: another agent is starting on the same state directory`);
}
