/**
 * The `multiall` command line. Human-readable output by default, `--json` for scripts.
 *
 * Exit codes (docs/cli.md): 0 success · 1 the operation failed or found problems ·
 * 2 usage error (bad arguments) · 3 the agent could not be reached.
 */
import { Command, CommanderError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { VERSION } from '../agent/version.ts';
import { registerAgentCommand } from './cmd-agent.ts';
import { registerConfigCommands } from './cmd-config.ts';
import { registerSecurityCommands } from './cmd-security.ts';
import { registerApiCommands } from './cmd-api.ts';
import { registerClusterCommands, registerFilesCommands } from './cmd-cluster.ts';
import '../agent/components.ts';
import { ApiError, ApiUnreachableError } from './client.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** Thrown by commands to exit with a message and code, without a stack trace. */
export class CliExit extends Error {
  readonly code: number;
  constructor(code: number, message = '') {
    super(message);
    this.code = code;
  }
}

export function buildProgram(): Command {
  const program = new Command('multiall')
    .description('MultiAll agent: keeps pools of servers in sync and available')
    .version(VERSION, '-V, --version')
    .addOption(new Option('--config <file>', 'agent config file (also locates the local API socket)').env('MULTIALL_CONFIG'))
    .addOption(new Option('--socket <path>', 'local API Unix socket').env('MULTIALL_SOCKET'))
    .addOption(new Option('--api <url>', 'local API over TCP, e.g. http://127.0.0.1:7951').env('MULTIALL_API'))
    .addOption(new Option('--token <secret>', 'bearer token for --api (prefer the MULTIALL_TOKEN variable)').env('MULTIALL_TOKEN'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerAgentCommand(program);
  registerConfigCommands(program);
  registerSecurityCommands(program);
  registerApiCommands(program);
  registerClusterCommands(program);
  registerFilesCommands(program);
  // Subcommands inherit exitOverride so usage errors come back here.
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    if (err instanceof CliExit) {
      if (err.message) process.stderr.write(err.message.endsWith('\n') ? err.message : `${err.message}\n`);
      return err.code;
    }
    if (err instanceof ApiUnreachableError) {
      process.stderr.write(`multiall: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`multiall: ${err.message}\n`);
      return EXIT.failed;
    }
    process.stderr.write(`multiall: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  // `multiall agent` resolves only when the agent has stopped.
  process.exitCode = await main(process.argv.slice(2));
}

export function fileMustExist(path: string, what: string): void {
  if (!existsSync(path)) throw new CliExit(EXIT.usage, `multiall: ${what} ${path} does not exist`);
}
