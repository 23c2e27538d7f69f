/**
 * Registers every component's settings schema with the config loader, so `config check` and the
 * agent validate pool settings (health, failover, files, …) with positions. Import for effect.
 */
import { componentRegistry } from '../config/components.ts';
import { poolHealthSectionSchema } from '../health/schema.ts';
import { failoverSectionSchema } from '../failover/schema.ts';
import { filesSectionSchema } from '../filesync/schema.ts';

const builtins: [string, Parameters<typeof componentRegistry.register>[1], string][] = [
  ['health', poolHealthSectionSchema, 'health rules, interval, exceptions (docs/health.md)'],
  ['failover', failoverSectionSchema, 'master/standby services and their actions (docs/failover.md)'],
  ['files', filesSectionSchema, 'trees kept identical across the pool (docs/filesync.md)'],
];

for (const [name, schema, description] of builtins) {
  if (!componentRegistry.has(name)) componentRegistry.register(name, schema, { description });
}
