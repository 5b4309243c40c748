import { promisify } from 'node:util';
import v8 from 'node:v8';
import zlib from 'node:zlib';
import { CachePostgresError, InvalidOptionError, InvalidValueError, ValueTooLargeError } from './errors.js';

/** Turns values into the bytes stored in the `value` column, and back. */
export interface Serializer {
  /** Shown in errors. */
  readonly name: string;
  serialize(value: unknown): Buffer | Uint8Array | string;
  deserialize(bytes: Buffer): unknown;
}

/**
 * JSON as UTF-8 (what .NET's JsonSerializer, Python's json and any other reader understand).
 * Buffers pass through untouched; on the way back, bytes that are not JSON come back as a Buffer.
 * (So a Buffer whose bytes happen to be valid JSON text comes back parsed: functions that return
 * Buffers should use `serializers.raw`.)
 */
const json: Serializer = {
  name: 'json',
  serialize(value) {
    if (value instanceof Uint8Array) return value;
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new InvalidValueError(`The json serializer cannot store ${typeof value}; return null (or use the v8 serializer).`);
    }
    return text;
  },
  deserialize(bytes) {
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch {
      return bytes;
    }
  },
};

/** Bytes as they are: for functions returning Buffers, Uint8Arrays or strings (read back as Buffers). */
const raw: Serializer = {
  name: 'raw',
  serialize(value) {
    if (value instanceof Uint8Array || typeof value === 'string') return value;
    throw new InvalidValueError(`The raw serializer stores Buffers, Uint8Arrays and strings, got ${value === null ? 'null' : typeof value}.`);
  },
  deserialize: (bytes) => bytes,
};

/** Node's structured clone format: Dates, Maps, Sets, BigInts, typed arrays, undefined. Readable by Node only. */
const v8Serializer: Serializer = {
  name: 'v8',
  serialize: (value) => v8.serialize(value),
  deserialize: (bytes) => v8.deserialize(bytes),
};

/** The built-in serializers. */
export const serializers = { json, raw, v8: v8Serializer } as const;

/** Compress values above a size, with a header so any reader can tell compressed values apart. */
export interface CompressionOptions {
  /** Values of at least this many bytes (after serialization) are compressed. @default 1024 */
  threshold?: number | undefined;
  /** @default 'gzip' */
  algorithm?: 'gzip' | 'brotli' | undefined;
}

/** How wrappers turn values into stored bytes. */
export interface PayloadOptions {
  /** @default 'json' */
  serializer?: Serializer | keyof typeof serializers | undefined;
  /** `true` for the defaults; off unless given. */
  compression?: boolean | CompressionOptions | undefined;
  /** Refuse values whose stored form (after compression) is larger than this many bytes. @default no limit */
  maxValueSize?: number | undefined;
}

/**
 * Compressed values start with NUL, "cpz" and the algorithm: no JSON or UTF-8 text starts with NUL
 * and v8's format starts with 0xFF, so the header cannot be mistaken for an uncompressed value.
 */
const MAGIC = Buffer.from([0x00, 0x63, 0x70, 0x7a]);
const ALGORITHMS = {
  gzip: { tag: 0x67, compress: promisify(zlib.gzip), decompress: promisify(zlib.gunzip) },
  brotli: { tag: 0x62, compress: promisify(zlib.brotliCompress), decompress: promisify(zlib.brotliDecompress) },
} as const;

/** A serializer plus compression and a size limit, resolved once per wrapper. */
export class Payload {
  readonly #serializer: Serializer;
  readonly #compression: { threshold: number; algorithm: keyof typeof ALGORITHMS } | undefined;
  readonly #maxValueSize: number;

  constructor(options: PayloadOptions = {}) {
    const chosen = options.serializer ?? 'json';
    if (typeof chosen === 'string') {
      if (!(chosen in serializers)) throw new InvalidOptionError('serializer', `must be one of ${Object.keys(serializers).join(', ')} or an object.`);
      this.#serializer = serializers[chosen];
    } else if (typeof chosen?.serialize === 'function' && typeof chosen.deserialize === 'function') {
      this.#serializer = chosen;
    } else {
      throw new InvalidOptionError('serializer', 'must have serialize() and deserialize() functions.');
    }
    const compression = options.compression === true ? {} : options.compression || undefined;
    if (compression) {
      const algorithm = compression.algorithm ?? 'gzip';
      if (!(algorithm in ALGORITHMS)) throw new InvalidOptionError('compression', "algorithm must be 'gzip' or 'brotli'.");
      const threshold = compression.threshold ?? 1024;
      if (!Number.isSafeInteger(threshold) || threshold < 0) throw new InvalidOptionError('compression', 'threshold must be a whole number of bytes.');
      this.#compression = { threshold, algorithm };
    }
    this.#maxValueSize = options.maxValueSize ?? Number.POSITIVE_INFINITY;
    if (!(this.#maxValueSize > 0)) throw new InvalidOptionError('maxValueSize', 'must be a positive number of bytes.');
  }

  /** The bytes to store for `value`. */
  async encode(value: unknown): Promise<Buffer> {
    let serialized: Buffer | Uint8Array | string;
    try {
      serialized = this.#serializer.serialize(value);
    } catch (error) {
      if (error instanceof CachePostgresError) throw error;
      throw new InvalidValueError(`The ${this.#serializer.name} serializer could not serialize the value: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    if (typeof serialized !== 'string' && !(serialized instanceof Uint8Array)) {
      throw new InvalidValueError(`The ${this.#serializer.name} serializer must return a string, a Buffer or a Uint8Array; got ${typeof serialized}.`);
    }
    let bytes = typeof serialized === 'string' ? Buffer.from(serialized, 'utf8') : Buffer.from(serialized.buffer, serialized.byteOffset, serialized.byteLength);
    if (this.#compression && bytes.length >= this.#compression.threshold) {
      const algorithm = ALGORITHMS[this.#compression.algorithm];
      bytes = Buffer.concat([MAGIC, Buffer.from([algorithm.tag]), await algorithm.compress(bytes)]);
    }
    if (bytes.length > this.#maxValueSize) throw new ValueTooLargeError(bytes.length, this.#maxValueSize);
    return bytes;
  }

  /** The value stored as `bytes` (decompressed first when it carries the header). */
  async decode(bytes: Buffer): Promise<unknown> {
    let body = bytes;
    if (bytes.length > MAGIC.length && bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
      const algorithm = Object.values(ALGORITHMS).find((a) => a.tag === bytes[MAGIC.length]);
      if (algorithm) body = await algorithm.decompress(bytes.subarray(MAGIC.length + 1));
    }
    try {
      return this.#serializer.deserialize(body);
    } catch (error) {
      if (error instanceof CachePostgresError) throw error;
      throw new InvalidValueError(`The ${this.#serializer.name} serializer could not read the stored value: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
  }
}
