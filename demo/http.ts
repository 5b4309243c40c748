/**
 * The dashboard's HTTP plumbing: JSON bodies with a size limit, input checks that answer 4xx with a
 * message the page shows, and the mapping of every failure to a response (never a stack trace).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CachePostgresError, InvalidDurationError, InvalidKeyError, InvalidOptionError, InvalidValueError, ValueTooLargeError } from 'cache-postgres';

/** A request the dashboard refuses: `status` is a 4xx, `message` is shown on the page as is. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Headers the answer carries (a 405's `Allow`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Largest request body accepted (values are capped lower, per field). */
export const MAX_BODY_BYTES = 256 * 1024;

export type Body = Record<string, unknown>;

export async function readJson(req: IncomingMessage): Promise<Body> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `The request body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `The request body is over ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'The request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'The request body must be a JSON object.');
  return parsed as Body;
}

/** A whole number in [min, max]; `fallback` when absent. */
export function intField(body: Body, name: string, min: number, max: number, fallback?: number): number {
  const value = body[name] === undefined ? fallback : body[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new HttpError(400, `"${name}" must be a whole number from ${min} to ${max}${value === undefined ? '' : `, got ${JSON.stringify(value)}`}.`);
  }
  return value;
}

/** A non-empty string of at most `max` characters; `fallback` when absent. */
export function stringField(body: Body, name: string, max: number, fallback?: string): string {
  const value = body[name] === undefined ? fallback : body[name];
  if (typeof value !== 'string' || value.trim() === '') throw new HttpError(400, `"${name}" must be a non-empty string.`);
  if (value.length > max) throw new HttpError(400, `"${name}" is ${value.length} characters long; at most ${max} are allowed.`);
  return value;
}

/** One of `allowed`; `fallback` when absent. */
export function oneOf<T extends string>(body: Body, name: string, allowed: readonly T[], fallback?: T): T {
  const value = body[name] === undefined ? fallback : body[name];
  if (!allowed.includes(value as T)) throw new HttpError(400, `"${name}" must be one of ${allowed.join(', ')}.`);
  return value as T;
}

/** A list of 1 to `maxItems` non-empty strings (a comma-separated string is accepted too). */
export function stringList(body: Body, name: string, maxItems: number, maxLength: number): string[] {
  let value = body[name];
  if (typeof value === 'string') value = value.split(',');
  if (!Array.isArray(value)) throw new HttpError(400, `"${name}" must be a list of strings.`);
  const items = value.map((item) => (typeof item === 'string' ? item.trim() : '')).filter((item) => item !== '');
  if (items.length === 0) throw new HttpError(400, `"${name}" must name at least one entry.`);
  if (items.length > maxItems) throw new HttpError(400, `"${name}" has ${items.length} entries; at most ${maxItems} are allowed.`);
  const long = items.find((item) => item.length > maxLength);
  if (long !== undefined) throw new HttpError(400, `"${name}" has an entry of ${long.length} characters; at most ${maxLength} are allowed.`);
  return items;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** The library's input errors are the caller's fault: 400 with their message. */
const INPUT_ERRORS = [InvalidKeyError, InvalidValueError, InvalidOptionError, InvalidDurationError, ValueTooLargeError];

export const isInputError = (error: unknown): boolean => INPUT_ERRORS.some((type) => error instanceof type);

/** What a failure becomes on the wire: 4xx for bad input, 503 for the database, 500 otherwise; never a stack. */
export function errorResponse(error: unknown): { status: number; body: { error: string; code?: string }; headers?: Record<string, string> } {
  if (error instanceof HttpError) return { status: error.status, body: { error: error.message }, headers: error.headers };
  if (isInputError(error)) {
    const { message, code } = error as CachePostgresError;
    return { status: 400, body: { error: message, code } };
  }
  if (error instanceof CachePostgresError) return { status: 503, body: { error: error.message, code: error.code } };
  return { status: 500, body: { error: 'Internal error (details in the server log).' } };
}
