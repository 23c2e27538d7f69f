/** `multiall config check FILE` and `multiall config show [--effective]`. */
import type { Command } from 'commander';
import { loadConfigFile } from '../config/load.ts';
import { effectiveConfig } from '../config/effective.ts';
import { formatProblems, formatEffective } from '../config/format.ts';
import { CliExit, EXIT, fileMustExist } from './main.ts';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('check and show configuration files');

  config
    .command('check')
    .argument('<file>', 'config file to validate')
    .option('--json', 'print problems as JSON')
    .description('validate a config file; exit 1 and list every problem (file:line:col: path: message)')
    .action(async (file: string, opts: { json?: boolean }) => {
      fileMustExist(file, 'config file');
      const r = await loadConfigFile(file);
      const problems = r.ok ? [] : r.problems;
      const warnings = r.ok ? r.warnings : [];
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ok: r.ok, problems, warnings }, null, 2) + '\n');
      } else {
        if (warnings.length) process.stderr.write(formatProblems(warnings, 'warning') + '\n');
        if (!r.ok) process.stderr.write(formatProblems(problems) + '\n');
        else process.stdout.write(`${file}: ok${warnings.length ? ` (${warnings.length} warning${warnings.length > 1 ? 's' : ''})` : ''}\n`);
      }
      if (!r.ok) throw new CliExit(EXIT.failed);
    });

  config
    .command('show')
    .argument('[file]', 'config file (default: --config)')
    .option('--effective', "this node's aggregated settings with the source of each value")
    .option('--node <name>', 'show the effective configuration of another node of the file')
    .option('--json', 'print JSON')
    .description('print the parsed configuration, or with --effective the aggregation of all pools of a node')
    .action(async (fileArg: string | undefined, opts: { effective?: boolean; node?: string; json?: boolean }) => {
      const file = fileArg ?? program.opts<{ config?: string }>().config;
      if (!file) throw new CliExit(EXIT.usage, 'multiall config show: give a FILE or --config FILE');
      fileMustExist(file, 'config file');
      const r = await loadConfigFile(file);
      if (!r.ok) throw new CliExit(EXIT.failed, formatProblems(r.problems));
      if (!opts.effective) {
        if (opts.node) throw new CliExit(EXIT.usage, 'multiall config show: --node needs --effective');
        process.stdout.write(JSON.stringify(r.config, null, 2) + '\n');
        return;
      }
      const node = opts.node ?? r.config.node.name;
      const known = new Set([r.config.node.name, ...r.config.pools.flatMap((p) => p.members)]);
      if (!known.has(node)) throw new CliExit(EXIT.failed, `multiall config show: node '${node}' is in no pool of ${file}`);
      const eff = effectiveConfig(r.config, node);
      process.stdout.write(formatEffective(eff, { json: Boolean(opts.json) }) + '\n');
      if (eff.conflicts.length > 0) throw new CliExit(EXIT.failed);
    });
}
