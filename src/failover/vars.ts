/**
 * %VAR% expansion in action commands. The set of variables is closed, so a typo is refused when
 * the configuration is loaded (checkTemplate), not when the failover happens.
 *
 *   %MASTER%           the master after the transition (empty if none is known)
 *   %SLAVE%            the preferred standby (first by rank), empty if none
 *   %STANDBY%          all standbys, comma-separated, by rank
 *   %NODE% %POOL% %SERVICE%   this node, the pool, the service
 *   %TERM%             the election term (fencing token) of the master named in %MASTER%
 *   %PREVIOUS_MASTER%  the master before this one (empty if unknown)
 *   %MEMBER% %HEALTH%  health_changed only: the member whose health changed, and its new state
 *                      (ok | unhealthy | maintenance | down); empty in other transitions
 *   %%                 a literal %
 *
 * Values are inserted as they are (the command is a shell line the admin wrote), so every value
 * must consist of safe characters [A-Za-z0-9._,:/@+-]; node names always do. Each variable is
 * also exported to the command's environment as MULTIALL_<NAME>.
 *
 * Public interface: VAR_NAMES, VarName, Vars, checkTemplate, expandTemplate, varsEnv.
 * Depends on: nothing.
 */

export const VAR_NAMES = ['MASTER', 'SLAVE', 'STANDBY', 'NODE', 'POOL', 'SERVICE', 'TERM', 'PREVIOUS_MASTER', 'MEMBER', 'HEALTH'] as const;
export type VarName = (typeof VAR_NAMES)[number];
export type Vars = Record<VarName, string>;

const TOKEN = /%([A-Za-z0-9_]*)%/g;
const SAFE_VALUE = /^[A-Za-z0-9._,:/@+-]*$/;
const KNOWN = new Set<string>(VAR_NAMES);

/** Problems in a template: unknown variables and an unterminated %. Empty = fine. */
export function checkTemplate(template: string): string[] {
  const problems: string[] = [];
  for (const m of template.matchAll(TOKEN)) {
    const name = m[1] ?? '';
    if (name !== '' && !KNOWN.has(name)) {
      problems.push(`unknown variable %${name}% (known: ${VAR_NAMES.map((v) => `%${v}%`).join(' ')}, %% for a literal %)`);
    }
  }
  if (template.replace(TOKEN, '').includes('%')) problems.push('a lone % (write %% for a literal %)');
  return problems;
}

/** Expands a template checked by checkTemplate. Throws if a value holds unsafe characters. */
export function expandTemplate(template: string, vars: Vars): string {
  return template.replace(TOKEN, (_all, name: string) => {
    if (name === '') return '%';
    if (!KNOWN.has(name)) throw new Error(`unknown variable %${name}%`);
    const value = vars[name as VarName];
    if (!SAFE_VALUE.test(value)) {
      throw new Error(`value of %${name}% (${JSON.stringify(value)}) has characters outside [A-Za-z0-9._,:/@+-]; refusing to put it in a shell command`);
    }
    return value;
  });
}

/** MULTIALL_<NAME>=value for the action's environment. */
export function varsEnv(vars: Vars): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of VAR_NAMES) env[`MULTIALL_${k}`] = vars[k];
  return env;
}

export function emptyVars(): Vars {
  return Object.fromEntries(VAR_NAMES.map((k) => [k, ''])) as Vars;
}
