/**
 * Post-sync actions of a tree: after a burst of applied remote changes, run the configured
 * commands once (trailing debounce), one after another, through /bin/sh with a timeout, in the
 * tree root, with MULTIALL_TREE / MULTIALL_TREE_PATH / MULTIALL_CHANGED (count) in the
 * environment. Outcomes go to the log and to the `onResult` callback (event bus).
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.ts';
import type { PostSyncAction } from './types.ts';

export interface PostSyncResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  output: string;
}

export class PostSync {
  readonly #actions: readonly PostSyncAction[];
  readonly #debounceMs: number;
  readonly #env: Record<string, string>;
  readonly #cwd: string;
  readonly #log: Logger;
  readonly #onResult: (r: PostSyncResult) => void;
  #timer: NodeJS.Timeout | undefined;
  #changed = 0;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(opts: { actions: readonly PostSyncAction[]; debounceMs: number; tree: string; root: string; logger: Logger; onResult: (r: PostSyncResult) => void }) {
    this.#actions = opts.actions;
    this.#debounceMs = opts.debounceMs;
    this.#cwd = opts.root;
    this.#env = { MULTIALL_TREE: opts.tree, MULTIALL_TREE_PATH: opts.root };
    this.#log = opts.logger;
    this.#onResult = opts.onResult;
  }

  /** Note `n` applied changes; the actions run debounceMs after the last call. */
  trigger(n: number): void {
    if (this.#actions.length === 0 || this.#stopped) return;
    this.#changed += n;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const changed = this.#changed;
      this.#changed = 0;
      this.#running = this.#running.then(() => this.#runAll(changed));
    }, this.#debounceMs);
  }

  async #runAll(changed: number): Promise<void> {
    for (const a of this.#actions) {
      if (this.#stopped) return;
      const r = await this.#run(a, changed);
      if (r.exitCode === 0) this.#log.info({ command: a.run, durationMs: r.durationMs }, 'post-sync action done');
      else this.#log.warn({ command: a.run, exitCode: r.exitCode, signal: r.signal, output: r.output }, 'post-sync action failed');
      this.#onResult(r);
    }
  }

  #run(a: PostSyncAction, changed: number): Promise<PostSyncResult> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      execFile('/bin/sh', ['-c', a.run], { cwd: this.#cwd, timeout: a.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, env: { ...process.env, ...this.#env, MULTIALL_CHANGED: String(changed) } },
        (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
          resolve({
            command: a.run,
            exitCode: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
            signal: e?.signal ?? null,
            durationMs: Math.round(performance.now() - t0),
            output: `${stdout}${stderr}`.slice(-2000),
          });
        });
    });
  }

  /** Cancels a pending run and waits for a running one. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
