/**
 * Registry of per-component settings schemas.
 *
 * A pool's `settings:` (and a node override's `settings:`) is a map with one key per component
 * (`tags`, `vars`, later `health`, `failover`, `files`, `dns`, …). Each component owns the schema
 * of its sub-document and registers it here; the loader validates every `settings.<component>`
 * against the registered schema at parse time, so problems inside a component's settings are
 * reported with file, line, column and dotted path like any other config problem. A key under
 * `settings:` that no component registered is an error that lists the known components.
 *
 * The schema validates ONE pool's (or one override's) sub-document. The config keeps that
 * sub-document as written, not the schema's output: defaults and transforms do not leak into the
 * aggregation (effective.ts), and the component parses the aggregated settings itself.
 *
 * Rules for a component schema (see docs/configuration.md, "For component authors"):
 * - fields that another pool (or the override) may provide are optional in this schema: a
 *   required field would force every pool to repeat it. Check required fields on the aggregated
 *   settings (`EffectiveConfig.settings[component]`);
 * - use `z.strictObject` so unknown keys are reported (with a "did you mean" suggestion);
 * - lists of things that pools should be able to add to and override item by item are lists of
 *   objects with a string `name` field: the aggregation merges them by name.
 */
import * as z from 'zod';

export interface ComponentInfo {
  name: string;
  schema: z.ZodType;
  /** One line for `config check` messages and the docs. */
  description: string;
}

const COMPONENT_NAME = /^[a-z][a-z0-9_]*$/;

export class ComponentRegistry {
  readonly #components = new Map<string, ComponentInfo>();

  /** Register the settings schema of one component. Throws on a bad or duplicate name. */
  register(name: string, schema: z.ZodType, opts: { description?: string } = {}): void {
    if (!COMPONENT_NAME.test(name)) {
      throw new Error(`component name ${JSON.stringify(name)} must match ${String(COMPONENT_NAME)}`);
    }
    const existing = this.#components.get(name);
    if (existing !== undefined) {
      if (existing.schema === schema) return; // registering the very same schema twice is harmless
      throw new Error(`a settings schema for component "${name}" is already registered`);
    }
    this.#components.set(name, { name, schema, description: opts.description ?? '' });
  }

  get(name: string): ComponentInfo | undefined {
    return this.#components.get(name);
  }

  has(name: string): boolean {
    return this.#components.has(name);
  }

  /** Registered component names, sorted. */
  names(): string[] {
    return [...this.#components.keys()].sort();
  }

  list(): ComponentInfo[] {
    return this.names().map((n) => this.#components.get(n) as ComponentInfo);
  }

  /** A new registry with the same components (tests add their own without touching the global one). */
  clone(): ComponentRegistry {
    const copy = new ComponentRegistry();
    for (const c of this.#components.values()) copy.register(c.name, c.schema, { description: c.description });
    return copy;
  }
}

// ---------------------------------------------------------------------------------------------
// Built-in component schemas.

/** `tags`: free-form string labels of the pool's members (published through membership). */
export const tagsSettingsSchema = z.record(z.string(), z.string());

/** `vars`: variables for action templates and checks (%NAME% expansion). */
export const varsSettingsSchema = z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' }),
);

/** The registry the loader uses unless told otherwise. */
export const componentRegistry = new ComponentRegistry();

componentRegistry.register('tags', tagsSettingsSchema, { description: 'string labels of the members (key: value)' });
componentRegistry.register('vars', varsSettingsSchema, { description: 'variables for actions and checks (string, number or boolean)' });
// Components add their built-in schema here, importing it from a dependency-free module that
// imports only zod (e.g. `import { healthSettingsSchema } from '../health/settings.ts'`), so that
// every program that loads a config knows every component:
//   componentRegistry.register('health', healthSettingsSchema, { description: '…' });

/** Register a component's settings schema in the default registry (see the module comment). */
export function registerComponentSchema(name: string, schema: z.ZodType, opts: { description?: string } = {}): void {
  componentRegistry.register(name, schema, opts);
}

/** Names of the components whose settings the default registry knows, sorted. */
export function knownComponents(): string[] {
  return componentRegistry.names();
}
