/**
 * Shared fast-check parameters for the property suites in test/property/.
 *
 * Every property runs with a fixed seed and a small number of runs by default, so CI is deterministic
 * and the whole property suite stays within about 20 seconds. To search harder, or to replay the seed
 * fast-check printed for a failure, set the environment:
 *
 *   FC_RUNS=1000 FC_SEED=123 npm run test:property
 *
 * (only the properties; add `-- --grep tags` for one file's). `npm test` runs them with the defaults.
 *
 * FC_SEED: the seed of every property (an integer; default below). FC_RUNS: runs per property.
 * FC_PATH: the `path` of a reported failure, to replay just that counterexample (with its FC_SEED, and
 * `--grep` naming that property: the path means nothing to the others).
 * On success nothing is printed; on failure fast-check reports the seed, the path and the shrunk
 * counterexample in the assertion error.
 */
const DEFAULT_SEED = 20_240_601;
const DEFAULT_RUNS = 100;

function integerFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}.`);
  return value;
}

export const seed = integerFromEnv('FC_SEED', DEFAULT_SEED, -(2 ** 31));
export const numRuns = integerFromEnv('FC_RUNS', DEFAULT_RUNS, 1);

const path = process.env['FC_PATH']?.trim() || undefined;

/** The parameters every `fc.assert` in test/property/ takes (spread it to override one field). */
export const fcParams: { readonly seed: number; readonly numRuns: number; readonly path?: string } = Object.freeze({
  seed,
  numRuns,
  ...(path === undefined ? {} : { path }),
});

/**
 * A mocha timeout for one property: generous per run (database round trips, and shrinking after a
 * failure), never below the suite's default.
 */
export function propertyTimeout(perRunMs = 1_000): number {
  return Math.max(60_000, numRuns * perRunMs);
}
