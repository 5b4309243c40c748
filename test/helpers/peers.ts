/**
 * The exact statements of the two other libraries that share the table (from the table contract), for
 * interop tests: rows they write must read right through store.ext, and rows ext writes must read
 * right through them. Only placeholders differ (.NET's @name and Python's %s become $n, with a cast
 * where psycopg or Npgsql would send a typed parameter).
 */
import { sql } from './db.js';

export const dotnet = {
  /** SetAsync: sliding in whole seconds (or null), absolute (or null), the application clock. */
  async set(table: string, id: string, value: Buffer, sliding: number | null, absolute: Date | null, utcNow: Date) {
    await sql(
      `WITH _PARAMS (slidingExpirationInSeconds, absoluteExpiration, utcNow) AS
( VALUES ($3, $4::timestamp, $5::timestamp) )
INSERT INTO ${table} (id, value, expiresAtTime, slidingExpirationInSeconds, absoluteExpiration)
SELECT $1, $2, CASE
    WHEN slidingExpirationInSeconds IS NULL THEN absoluteExpiration::timestamp
    ELSE utcNow + INTERVAL '1 second' * slidingExpirationInSeconds::bigint
END, slidingExpirationInSeconds::bigint, absoluteExpiration FROM _PARAMS
ON CONFLICT (id) DO UPDATE
SET value = EXCLUDED.value,
expiresAtTime = EXCLUDED.expiresAtTime,
slidingExpirationInSeconds = EXCLUDED.slidingExpirationInSeconds,
absoluteExpiration = EXCLUDED.absoluteExpiration`,
      [id, value, sliding === null ? null : String(sliding), absolute, utcNow],
    );
  },
  /** The UPDATE half of Get (and all of Refresh). */
  async refresh(table: string, id: string, utcNow: Date) {
    await sql(
      `UPDATE ${table}
SET expiresAtTime = CASE WHEN EXTRACT(SECOND FROM AGE(absoluteExpiration, $2)) <= slidingExpirationInSeconds THEN absoluteExpiration
ELSE $2 + INTERVAL '1 second' * slidingExpirationInSeconds
END
WHERE id = $1
AND expiresAtTime >= $2
AND slidingExpirationInSeconds IS NOT NULL
AND (absoluteExpiration IS NULL OR absoluteExpiration <> expiresAtTime)`,
      [id, utcNow],
    );
  },
  /** GetAsync: the UPDATE, then the SELECT. */
  async get(table: string, id: string, utcNow: Date): Promise<Buffer | undefined> {
    await dotnet.refresh(table, id, utcNow);
    const rows = await sql<{ value: Buffer }>(`SELECT value FROM ${table} WHERE id = $1 AND expiresAtTime >= $2`, [id, utcNow]);
    return rows[0]?.value;
  },
  async remove(table: string, id: string) {
    await sql(`DELETE FROM ${table} WHERE id = $1`, [id]);
  },
};

export const python = {
  /** set_item, with expires_at computed as the library does (LEAST(now + sliding, absolute); 100 years when neither). */
  async set(table: string, id: string, value: Buffer, sliding: number | null, absolute: Date | null, tags: string[] | null, now: Date) {
    let expires: Date;
    if (sliding !== null) {
      expires = new Date(now.getTime() + sliding * 1000);
      if (absolute && absolute < expires) expires = absolute;
    } else expires = absolute ?? new Date(now.getTime() + 36500 * 86_400_000);
    await sql(
      `INSERT INTO ${table} (id, value, expiresattime, slidingexpirationinseconds, absoluteexpiration, tags)
 VALUES ($1::varchar(449), $2::bytea, $3::timestamptz, $4::bigint, $5::timestamptz, $6::text[])
 ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expiresattime = EXCLUDED.expiresattime,
   slidingexpirationinseconds = EXCLUDED.slidingexpirationinseconds, absoluteexpiration = EXCLUDED.absoluteexpiration, tags = EXCLUDED.tags`,
      [id, value, expires, sliding, absolute, tags],
    );
  },
  async get(table: string, id: string, now: Date): Promise<Buffer | undefined> {
    const rows = await sql<{ value: Buffer }>(
      `UPDATE ${table} SET expiresattime = CASE WHEN slidingexpirationinseconds IS NOT NULL
  THEN LEAST( $1::timestamptz + (slidingexpirationinseconds * INTERVAL '1 second'), COALESCE(absoluteexpiration, 'infinity'::timestamptz) )
  ELSE expiresattime END
 WHERE id = $2 AND expiresattime >= $3 RETURNING value`,
      [now, id, now],
    );
    return rows[0]?.value;
  },
  async incr(table: string, id: string, by: number, now: Date): Promise<string> {
    const rows = await sql<{ v: string }>(
      `INSERT INTO ${table} (id, value, expiresattime) VALUES ($1, $2::text::bytea, 'infinity')
 ON CONFLICT (id) DO UPDATE SET value = CASE
   WHEN ${table}.expiresattime < $3 THEN $4::text::bytea
   ELSE (COALESCE(convert_from(${table}.value, 'UTF8')::bigint, 0) + $5)::text::bytea END,
   expiresattime = CASE WHEN ${table}.expiresattime < $6 THEN 'infinity'::timestamptz ELSE ${table}.expiresattime END
 RETURNING convert_from(value, 'UTF8')::bigint::text AS v`,
      [id, String(by), now, String(by), by, now],
    );
    return rows[0]!.v;
  },
  async deleteTags(table: string, tags: string[]): Promise<number> {
    return (await sql(`DELETE FROM ${table} WHERE tags @> $1::text[] RETURNING 1`, [tags])).length;
  },
  async getPattern(table: string, like: string, now: Date): Promise<string[]> {
    const rows = await sql<{ id: string }>(
      `UPDATE ${table} SET expiresattime = CASE WHEN slidingexpirationinseconds IS NOT NULL
  THEN LEAST( $1::timestamptz + (slidingexpirationinseconds * INTERVAL '1 second'), COALESCE(absoluteexpiration, 'infinity'::timestamptz) )
  ELSE expiresattime END
 WHERE id LIKE $2 AND expiresattime >= $3 RETURNING id, value`,
      [now, like, now],
    );
    return rows.map((r) => r.id).sort();
  },
};
