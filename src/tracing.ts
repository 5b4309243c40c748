/**
 * OpenTelemetry spans of every call, made in one place: {@link traceMethods} wraps the public methods of the
 * API's classes (PgStore, store.ext, a caller's transaction) and {@link traceFunction} the functions they hand
 * out (`cached` and its kin, a lock's handle), so no method has to remember. Each call is one CLIENT span named
 * `cache-postgres <operation>`, with the database client conventions' attributes (`db.system`,
 * `db.operation.name`, `db.collection.name`, `db.namespace`, `db.operation.batch.size`), the tier that answered
 * (`cache_postgres.tier`: local, batched or direct) and the statements that carried it (`cache_postgres.statement`).
 * A tick's batch is a span of its own, linked to the calls it carried ({@link traceBatch}).
 *
 * Off (no tracer provider registered, or a span not sampled), a call is the method itself behind one check of
 * the global provider: no span object, no context switch, no attributes. The lower layers learn of a call
 * through the active context ({@link noteStatement}, {@link noteLocal}, {@link currentCall}); while no call is
 * recorded they cost one comparison.
 */
import {
  type Attributes, type Context, context, createContextKey, type Link, ProxyTracerProvider, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode,
  type Tracer, type TracerProvider, trace,
} from '@opentelemetry/api';

const NAME = 'cache-postgres';
/** What the API's proxy provider delegates to while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

let lastProvider: TracerProvider | undefined;
let lastTracer: Tracer | undefined;

/**
 * The tracer of the provider registered now, or undefined while none is. Asked at every call (an SDK registered
 * after the store was created is used; `trace.disable()` is heeded); without a provider, one global lookup.
 */
function currentTracer(): Tracer | undefined {
  let provider = trace.getTracerProvider();
  if (provider instanceof ProxyTracerProvider) provider = provider.getDelegate();
  if (provider === NOOP_PROVIDER) return undefined;
  if (provider !== lastProvider) {
    lastProvider = provider;
    lastTracer = provider.getTracer(NAME);
  }
  return lastTracer;
}

/** Which tier answered a call: the in-process cache, a statement shared with other calls, or its own. */
export type Tier = 'local' | 'batched' | 'direct';

/** A recorded call or batch, reachable from the lower layers through the active context while it runs. */
export interface Traced {
  readonly kind: 'call' | 'batch';
  readonly span: Span;
  /** The context it runs in (its span active). */
  active: Context;
  /** The store's attributes (table, namespace): a batch takes its calls'. */
  readonly base: Attributes;
  /** Labels of the statements it sent itself, in order, each once. */
  statements: string[] | undefined;
  /** The local tier answered (part of) it. */
  local: boolean;
  /** The batch it rode last (a call only). */
  batch: Traced | undefined;
  ended: boolean;
}

const TRACED = createContextKey('cache-postgres call');
/** Recorded calls and batches not ended: while 0, the notes below return at once. */
let open = 0;

/** The store attributes of an object whose methods are traced (see {@link traceAs}). */
const targets = new WeakMap<object, Attributes>();

/** The spans of `instance`'s calls carry `attributes` (the store's table and namespace). */
export function traceAs(instance: object, attributes: Attributes): void {
  targets.set(instance, attributes);
}

/** How a call names what it touches: one key (its first argument), many (a collection of keys or entries), or neither. */
export type Keys = 'one' | 'many' | 'none';

/** One operation: its `db.operation.name` and what its first argument is. */
export interface Operation {
  readonly name: string;
  readonly keys: Keys;
}

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** The keys of `T`'s methods (accessors of other types aside). */
type MethodKeys<T> = { [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T];

/**
 * Wraps every method of `prototype` listed in `operations`: the operation its calls are spans of, or `'product'`
 * for a method that only hands out something whose own calls are traced (`ext.cached` returns a traced function). Throws (when the module loads, so every test fails)
 * if `prototype` has a public method the list leaves out: a method added without a span cannot ship.
 */
export function traceMethods<T extends object, Inherited = object>(
  prototype: T,
  operations: { readonly [P in Exclude<MethodKeys<T>, keyof Inherited>]: Operation | 'product' },
): void {
  const listed = operations as Record<string, Operation | 'product'>;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)!;
    if (name === 'constructor' || typeof descriptor.value !== 'function') continue;
    if (!(name in listed)) throw new Error(`cache-postgres: ${prototype.constructor.name}.${name} is not listed in its traced operations (src/tracing.ts).`);
  }
  for (const [name, operation] of Object.entries(listed)) {
    if (operation === 'product') continue;
    const method = (prototype as Record<string, unknown>)[name];
    if (typeof method !== 'function') throw new Error(`cache-postgres: ${prototype.constructor.name}.${name} is not a method.`);
    Object.defineProperty(prototype, name, { ...Object.getOwnPropertyDescriptor(prototype, name), value: traced(method as Fn, operation, undefined) });
  }
}

/** `fn` with a span per call, of operation `operation`, carrying `base` (the store's attributes). */
export function traceFunction<F extends (...args: never[]) => unknown>(fn: F, operation: Operation, base: Attributes): F {
  return traced(fn as unknown as Fn, operation, base) as unknown as F;
}

function traced(method: Fn, operation: Operation, base: Attributes | undefined): Fn {
  const spanName = `${NAME} ${operation.name}`;
  return function (this: unknown) {
    const tracer = currentTracer();
    // apply(this, arguments): V8 passes the arguments on without copying them
    if (tracer === undefined) return method.apply(this, arguments as unknown as unknown[]);
    return call(tracer, spanName, operation, base ?? targets.get(this as object) ?? {}, method, this, Array.from(arguments as unknown as unknown[]));
  };
}

function call(tracer: Tracer, spanName: string, operation: Operation, base: Attributes, method: Fn, self: unknown, args: unknown[]): unknown {
  const attributes: Attributes = { ...base, 'db.operation.name': operation.name };
  const first = args[0];
  if (operation.keys === 'one' && typeof first === 'string') attributes['cache_postgres.key'] = first;
  else if (operation.keys === 'many') {
    const size = sizeOf(first);
    if (size !== undefined && size >= 2) attributes['db.operation.batch.size'] = size;
  }
  const parent = context.active();
  const span = tracer.startSpan(spanName, { kind: SpanKind.CLIENT, attributes }, parent);
  if (!span.isRecording()) {
    span.end();
    return method.apply(self, args);
  }
  const record: Traced = { kind: 'call', span, active: parent, base, statements: undefined, local: false, batch: undefined, ended: false };
  const active = (record.active = trace.setSpan(parent, span).setValue(TRACED, record));
  open++;
  let result: unknown;
  try {
    result = context.with(active, method, self, ...args);
  } catch (error) {
    finish(record, error, true);
    throw error;
  }
  if (isAsyncIterator(result)) return iterate(result, record, active);
  if (result instanceof Promise) {
    return result.then(
      (value: unknown) => (finish(record, undefined, false), value),
      (error: unknown) => {
        finish(record, error, true);
        throw error;
      },
    );
  }
  finish(record, undefined, false);
  return result;
}

/** How many keys or entries a many-key call's first argument holds, when that can be told without consuming it. */
function sizeOf(value: unknown): number | undefined {
  if (Array.isArray(value)) return value.length;
  if (value instanceof Map || value instanceof Set) return value.size;
  if (value !== null && typeof value === 'object' && !(Symbol.iterator in value)) return Object.keys(value).length;
  return undefined;
}

function isAsyncIterator(value: unknown): value is AsyncGenerator<unknown, unknown, unknown> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncGenerator).next === 'function' && Symbol.asyncIterator in value;
}

/** An iteration (Keyv's iterator, ext.scan) is one span, from the call to its end; each step runs in its context. */
function iterate(inner: AsyncGenerator<unknown, unknown, unknown>, record: Traced, active: Context): AsyncGenerator<unknown, unknown, unknown> {
  const step = (method: (value: unknown) => Promise<IteratorResult<unknown, unknown>>, value: unknown) =>
    context.with(active, () => method.call(inner, value)).then(
      (result) => {
        if (result.done) finish(record, undefined, false);
        return result;
      },
      (error: unknown) => {
        finish(record, error, true);
        throw error;
      },
    );
  const outer = {
    next: (value?: unknown) => step(inner.next as (value: unknown) => Promise<IteratorResult<unknown, unknown>>, value),
    return: (value?: unknown) => step(inner.return, value),
    throw: (error?: unknown) => step(inner.throw, error),
    [Symbol.asyncIterator]: () => outer,
  };
  return outer as unknown as AsyncGenerator<unknown, unknown, unknown>;
}

function finish(record: Traced, error: unknown, failed: boolean): void {
  if (record.ended) return;
  record.ended = true;
  open--;
  const { span, batch } = record;
  const statements = batch?.statements ? [...new Set([...(record.statements ?? []), ...batch.statements])] : record.statements;
  const tier: Tier | undefined = batch || record.kind === 'batch' ? 'batched' : statements ? 'direct' : record.local ? 'local' : undefined;
  if (tier) span.setAttribute('cache_postgres.tier', tier);
  if (statements) span.setAttribute('cache_postgres.statement', statements.join(' '));
  if (failed) {
    const type = error instanceof Error ? error.name : typeof error;
    span.recordException(error instanceof Error ? error : String(error));
    span.setAttribute('error.type', type);
    span.setStatus({ code: SpanStatusCode.ERROR, ...(error instanceof Error ? { message: error.message } : {}) });
  }
  span.end();
}

/** True while a call or batch is recorded (else a batch need not look for the calls it carries). */
export function recording(): boolean {
  return open !== 0;
}

/** The recorded call running now (its batch item captures it), or undefined: none is, or nothing records. */
export function currentCall(): Traced | undefined {
  if (open === 0) return undefined;
  const record = context.active().getValue(TRACED) as Traced | undefined;
  return record && !record.ended && record.kind === 'call' ? record : undefined;
}

/** A statement is being sent: it belongs to the call (or batch) running now. */
export function noteStatement(label: string): void {
  if (open === 0) return;
  const record = context.active().getValue(TRACED) as Traced | undefined;
  if (!record || record.ended) return;
  if (!record.statements) record.statements = [label];
  else if (!record.statements.includes(label)) record.statements.push(label);
}

/** The local tier answered the call running now (for a key of it). */
export function noteLocal(): void {
  if (open === 0) return;
  const record = context.active().getValue(TRACED) as Traced | undefined;
  if (record) record.local = true;
}

/**
 * Runs a batch's statement(s) (`run`), for `riders`, the items it carries with the call each was loaded under.
 * Two or more items: a span `cache-postgres batch <name>` (a root: it belongs to no one caller), linked to the
 * recorded calls it carries, which are then `batched` by its statements. One item: the batch is that call's own
 * statement, run in its context (`direct`). Nothing recorded: `run` as is, out of any caller's context.
 */
export function traceBatch<T>(name: string, riders: ReadonlyArray<{ readonly call?: Traced | undefined }>, run: () => Promise<T>): Promise<T> {
  if (open === 0) return run();
  const calls = new Set<Traced>();
  for (const rider of riders) if (rider.call && !rider.call.ended) calls.add(rider.call);
  const tracer = currentTracer();
  if (calls.size === 0 || tracer === undefined) return context.with(ROOT_CONTEXT, run);
  const [first] = calls as unknown as [Traced];
  if (riders.length === 1) return context.with(first.active, run);
  const links: Link[] = [...calls].map((rider) => ({ context: rider.span.spanContext() }));
  const attributes: Attributes = { ...first.base, 'db.operation.name': `BATCH ${name}`, 'db.operation.batch.size': riders.length };
  const span = tracer.startSpan(`${NAME} batch ${name}`, { kind: SpanKind.CLIENT, attributes, links, root: true }, ROOT_CONTEXT);
  const record: Traced = { kind: 'batch', span, active: ROOT_CONTEXT, base: first.base, statements: undefined, local: false, batch: undefined, ended: false };
  record.active = trace.setSpan(ROOT_CONTEXT, span).setValue(TRACED, record);
  for (const rider of calls) rider.batch = record;
  open++;
  let pending: Promise<T>;
  try {
    pending = context.with(record.active, run);
  } catch (error) {
    finish(record, error, true);
    throw error;
  }
  return pending.then(
    (value) => (finish(record, undefined, false), value),
    (error: unknown) => {
      finish(record, error, true);
      throw error;
    },
  );
}
