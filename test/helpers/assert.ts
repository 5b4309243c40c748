import { expect } from 'chai';

/** Awaits `promise` and returns its rejection, failing when it resolves or rejects with another class. */
export async function rejects<E extends Error>(
  promise: Promise<unknown> | (() => unknown),
  type: new (...args: never[]) => E,
  message?: RegExp,
): Promise<E> {
  let outcome: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    outcome = error;
  }
  expect(outcome, 'expected a rejection').to.be.instanceOf(type);
  if (message) expect((outcome as Error).message).to.match(message);
  return outcome as E;
}

/** A clock tests move by hand: expiry without sleeps. */
export function manualClock(start = Date.now()) {
  let now = start;
  const clock = () => now;
  return Object.assign(clock, {
    advance: (ms: number) => {
      now += ms;
    },
    set: (ms: number) => {
      now = ms;
    },
  });
}
