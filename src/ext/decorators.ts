import { InvalidOptionError } from '../errors.js';
import type { CachedOptions, EarlyOptions, FailoverOptions, Wrappers } from './wrappers.js';

/** A standard (TC39, TypeScript 5) method decorator for methods returning a promise. */
export type MethodDecorator = <This, A extends unknown[], R>(
  method: (this: This, ...args: A) => Promise<R>,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>,
) => (this: This, ...args: A) => Promise<R>;

/** `@cached`, `@failover` and `@early` for class methods: the key template sees the method's arguments. */
export interface Decorators {
  cached(options: CachedOptions<unknown[]>): MethodDecorator;
  failover(options: FailoverOptions<unknown[]>): MethodDecorator;
  early(options: EarlyOptions<unknown[]>): MethodDecorator;
}

/** Builds the decorators over one store's wrappers. Options are checked once, when the class is defined. */
export function createDecorators(wrappers: Wrappers): Decorators {
  const decorator =
    (make: (method: (...args: unknown[]) => Promise<unknown>) => (...args: unknown[]) => Promise<unknown>): MethodDecorator =>
    (method, context) => {
      if (context?.kind !== 'method') {
        throw new InvalidOptionError('decorator', `cache-postgres decorators apply to methods only (TypeScript 5 / TC39 decorators), not to a ${context?.kind ?? 'legacy experimentalDecorators target'}.`);
      }
      return make(method as never) as never;
    };
  return {
    cached: (options) => decorator((method) => wrappers.cached(method, options)),
    failover: (options) => decorator((method) => wrappers.failover(method, options)),
    early: (options) => decorator((method) => wrappers.early(method, options)),
  };
}
