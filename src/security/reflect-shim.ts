/**
 * Minimal Reflect metadata API, installed only when absent. @peculiar/x509 pulls in tsyringe,
 * which refuses to load without `Reflect.getMetadata`; no reflect polyfill package is installed,
 * and tsyringe only needs define/get(Own)Metadata keyed by (target, key). Import this module
 * before '@peculiar/x509'.
 */

type Target = object;
const store = new WeakMap<Target, Map<unknown, unknown>>();

interface ReflectMetadata {
  defineMetadata(key: unknown, value: unknown, target: Target): void;
  getOwnMetadata(key: unknown, target: Target): unknown;
  getMetadata(key: unknown, target: Target): unknown;
  metadata(key: unknown, value: unknown): (target: Target) => void;
}

const R = Reflect as unknown as Partial<ReflectMetadata>;
if (typeof R.getMetadata !== 'function') {
  const getOwn = (key: unknown, target: Target): unknown => store.get(target)?.get(key);
  R.defineMetadata = (key, value, target) => {
    let m = store.get(target);
    if (m === undefined) store.set(target, (m = new Map()));
    m.set(key, value);
  };
  R.getOwnMetadata = getOwn;
  R.getMetadata = (key, target) => {
    // Walk the prototype chain like reflect-metadata does.
    for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
      const v = getOwn(key, t);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  R.metadata = (key, value) => (target) => R.defineMetadata!(key, value, target);
}

export {};
