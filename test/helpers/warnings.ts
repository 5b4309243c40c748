/**
 * The root hook (test/setup.ts) fails the run on any process warning; a test that checks a warning
 * captures it here instead.
 */
let capturing: Array<Error & { code?: string }> | undefined;

/** True while a test captures warnings: the root hook then leaves them to it. */
export function capturingWarnings(): boolean {
  return capturing !== undefined;
}

/** The process warnings emitted while `fn` runs (a warning is emitted on the next tick: awaited here). */
export async function processWarnings(fn: () => Promise<unknown> | unknown): Promise<Array<Error & { code?: string }>> {
  const seen: Array<Error & { code?: string }> = [];
  const listener = (warning: Error) => seen.push(warning);
  capturing = seen;
  process.on('warning', listener);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
    capturing = undefined;
  }
  return seen;
}
