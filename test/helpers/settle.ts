/** Helpers for tests about calls that must settle: a hang becomes a failed assertion, not a stuck suite. */

/** What a promise came to, or 'pending' when it had not settled when asked. */
export type Outcome<T> = { state: 'pending' } | { state: 'fulfilled'; value: T } | { state: 'rejected'; reason: unknown; at: number };

/** Watches a promise without awaiting it: `outcome` tells at any moment how (and when) it settled. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; readonly outcome: Outcome<T>; readonly settledAt: number | undefined } {
  let outcome: Outcome<T> = { state: 'pending' };
  let settledAt: number | undefined;
  promise.then(
    (value) => {
      settledAt = performance.now();
      outcome = { state: 'fulfilled', value };
    },
    (reason: unknown) => {
      settledAt = performance.now();
      outcome = { state: 'rejected', reason, at: settledAt };
    },
  );
  return {
    promise,
    get outcome() {
      return outcome;
    },
    get settledAt() {
      return settledAt;
    },
  };
}

/** Resolves or rejects like `promise`, or rejects with "still pending after ms" so a hang fails the test. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The rejection of `promise` (awaited within `ms`), failing when it resolves. */
export async function rejection(promise: Promise<unknown>, ms: number, what: string): Promise<{ code?: unknown; message: string } & Error> {
  try {
    await within(promise, ms, what);
  } catch (error) {
    if (error instanceof Error && error.message === `${what}: still pending after ${ms} ms`) throw error;
    return error as Error;
  }
  throw new Error(`${what}: resolved, expected a rejection`);
}
