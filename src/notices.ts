import { KEY_DIGEST_HEX, keyDigest } from './key_digest.js';

/**
 * The notices on a table's channel (LISTEN/NOTIFY) that keep the in-process tiers coherent: what a store
 * sends after its writes, what the notify trigger sends for a write of any client (TRIGGER_SENDER), and
 * what a caller's transaction sends on its own connection (delivered at its commit).
 */

/**
 * What the notices sent on a caller's connection (`ext.in(client)`) name as their sender, followed by an
 * id of the `CacheTransaction`: no store's own, so every tier, this process's included, acts on them.
 */
export const CALLER_SENDER_PREFIX = 'transaction:';

/** What a key's digest looks like in a notice (key_digest.ts). */
const DIGEST = new RegExp(`^[0-9a-f]{${KEY_DIGEST_HEX}}$`);

/** NOTIFY payloads are limited to 8000 bytes; a longer key list becomes "everything". */
const MAX_PAYLOAD = 7900;

/**
 * The invalidation message between stores: the sender's id (a store ignores its own messages, it has
 * already invalidated) and the keys' digests (key_digest.ts: any role may listen, so keys never travel in
 * clear) as a JSON array, or `*` for everything.
 */
export function encodeInvalidation(sender: string, keys: readonly string[] | 'all'): string {
  if (keys !== 'all') {
    const payload = `${sender}\n${JSON.stringify(keys.map(keyDigest))}`;
    if (Buffer.byteLength(payload) <= MAX_PAYLOAD) return payload;
  }
  return `${sender}\n*`;
}

/**
 * Reads a payload of {@link encodeInvalidation} (or of a table trigger): the sender and the digests, or
 * undefined for anything else on the channel.
 */
export function decodeInvalidation(payload: string): { sender: string; keys: string[] | 'all' } | undefined {
  const newline = payload.indexOf('\n');
  if (newline < 0) return undefined;
  const sender = payload.slice(0, newline);
  const body = payload.slice(newline + 1);
  if (body === '*') return { sender, keys: 'all' };
  try {
    const keys: unknown = JSON.parse(body);
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) return undefined;
    // A list of anything but digests (a store of an earlier version names keys in clear): which entries it
    // means is unknown here, so everything goes, rather than a tier keeping what another process changed.
    return keys.every((key) => DIGEST.test(key)) ? { sender, keys } : { sender, keys: 'all' };
  } catch {
    return undefined;
  }
}
