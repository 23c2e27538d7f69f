/**
 * Argument parsing shared by the bench scripts: an unknown option or a bad number ends the
 * script with a one-line reason and its usage (exit 2), never a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export function usageError(reason: string, usage: string): never {
  process.stderr.write(`error: ${reason}\nusage: ${usage}\n`);
  process.exit(2);
}

export function benchArgs<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    usageError((e as Error).message.split('\n')[0]!, usage);
  }
}

/** `raw` as a number ≥ `min` (an integer unless `fraction`), or the script ends saying which argument is wrong. */
export function numberArg(name: string, raw: string | undefined, usage: string, opts: { min?: number; fraction?: boolean } = {}): number {
  const n = Number(raw);
  const min = opts.min ?? 0;
  if (raw === undefined || raw.trim() === '' || !Number.isFinite(n) || n < min || (opts.fraction !== true && !Number.isInteger(n))) {
    usageError(`${name} must be ${opts.fraction === true ? 'a number' : 'an integer'} ≥ ${min}, got ${JSON.stringify(raw)}`, usage);
  }
  return n;
}
