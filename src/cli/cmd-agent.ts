/** `multiall agent`: run the daemon in the foreground until SIGTERM/SIGINT; SIGHUP reloads. */
import type { Command } from 'commander';
import { Agent, ConfigInvalidError } from '../agent/agent.ts';
import { tuneRuntime } from '../agent/runtime.ts';
import { LockError } from '../state/lock.ts';
import { CliExit, EXIT } from './main.ts';

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the agent in the foreground (SIGTERM/SIGINT stop it cleanly, SIGHUP reloads the config)')
    .action(async () => {
      const configPath = program.opts<{ config?: string }>().config;
      if (!configPath) throw new CliExit(EXIT.usage, 'multiall agent: --config FILE is required');
      let agent: Agent;
      try {
        tuneRuntime();
        agent = await Agent.start({ configPath });
      } catch (err) {
        if (err instanceof ConfigInvalidError || err instanceof LockError) throw new CliExit(EXIT.failed, `multiall agent: ${err.message}`);
        throw new CliExit(EXIT.failed, `multiall agent: cannot start: ${(err as Error).message}`);
      }
      const stop = (signal: string) => {
        agent.stop(signal).catch((err: unknown) => agent.logger.error({ err }, 'stop failed'));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', () => {
        agent.logger.info('SIGHUP: reloading configuration');
        void agent.reload();
      });
      // A bug in one handler must not take the whole agent (and its peers' view of it) down.
      process.on('unhandledRejection', (err) => agent.logger.error({ err }, 'unhandled promise rejection'));
      await agent.done;
    });
}
