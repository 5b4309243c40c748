/**
 * @keyv/test-suite is written for vitest: it takes the vitest module, calls `it`, `beforeEach` and
 * `afterEach`, and asserts through the test context's `t.expect(...)`. Its built files never import
 * vitest at run time, so this adapter runs the unmodified suite under mocha with chai assertions.
 */
import { expect as chaiExpect } from 'chai';
import * as mocha from 'mocha';

/** vitest's toEqual ignores properties whose value is undefined; chai's deep equal does not. */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, withoutUndefined(v)]),
    );
  }
  return value;
}

function createExpect() {
  let made = 0;
  let planned: number | undefined;
  const expect = Object.assign(
    (actual: unknown) => {
      made++;
      return {
        toBe: (expected: unknown) => chaiExpect(actual).to.equal(expected),
        toEqual: (expected: unknown) => chaiExpect(withoutUndefined(actual)).to.deep.equal(withoutUndefined(expected)),
        toBeTruthy: () => chaiExpect(actual).to.be.ok,
        toBeFalsy: () => chaiExpect(actual).to.not.be.ok,
        toBeUndefined: () => chaiExpect(actual).to.equal(undefined),
        toBeDefined: () => chaiExpect(actual).to.not.equal(undefined),
        toBeNull: () => chaiExpect(actual).to.equal(null),
        not: {
          toBe: (expected: unknown) => chaiExpect(actual).to.not.equal(expected),
          toEqual: (expected: unknown) => chaiExpect(withoutUndefined(actual)).to.not.deep.equal(withoutUndefined(expected)),
        },
      };
    },
    {
      assertions: (count: number) => {
        planned = count;
      },
    },
  );
  const verify = () => {
    if (planned !== undefined && made !== planned) {
      throw new Error(`expected ${planned} assertions to be called but received ${made}`);
    }
  };
  return { expect, verify };
}

/** Stands in for `import * as test from 'vitest'` when calling the suite's functions. */
export const vitestShim = {
  it: (name: string, fn: (context: { expect: ReturnType<typeof createExpect>['expect'] }) => unknown) =>
    mocha.it(name, async () => {
      const { expect, verify } = createExpect();
      await fn({ expect });
      verify();
    }),
  beforeEach: (fn: () => unknown) => mocha.beforeEach(async () => void (await fn())),
  afterEach: (fn: () => unknown) => mocha.afterEach(async () => void (await fn())),
  describe: mocha.describe,
};
