import pg from 'pg';
import { queryError } from '../errors.js';

/** `application_name` of the connection that LISTENs, so it can be told apart. */
export const LISTENER_NAME = 'cache-postgres listener';

/** What a subscriber to a channel is told. */
export interface ListenHandlers {
  /** A notification's payload. */
  message(payload: string): void;
  /** True once listening; false when the connection is lost or listening stops. */
  state(listening: boolean): void;
  /** Why the connection was lost. */
  error(error: Error): void;
}

/** Ends one subscription; resolves once its connection is closed when it was the last. */
export interface Subscription {
  stop(): Promise<void>;
}

/**
 * One connection that LISTENs for every store of a pool: stores on the same connection settings share a
 * pool (pools.ts), and their local tiers share this too, each subscribed to its table's channel. It
 * reconnects (backoff on an unref'd timer) while anyone is subscribed, and closes when the last leaves.
 * Whatever was said on a channel while the connection was lost is lost too: subscribers hear
 * `state(false)`, then `state(true)` once listening again.
 */
class ListenConnection {
  readonly #config: pg.ClientConfig;
  readonly #onEmpty: () => void;
  /** Per channel, each subscriber: what it was last told (listening or not) and its table, for its errors. */
  readonly #subscribers = new Map<string, Map<ListenHandlers, { told: boolean; readonly table: string }>>();
  #client: pg.Client | undefined;
  /** True once the current client has connected (its LISTENs can be sent). */
  #connected = false;
  /** Channels LISTENed on the current client. */
  #listening = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #delay = 100;
  /**
   * The statements on the current client, one at a time: node-postgres deprecates (with a process warning) a
   * query sent while another is in flight, which tiers of several tables starting together did.
   */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(config: pg.ClientConfig, onEmpty: () => void) {
    this.#config = config;
    this.#onEmpty = onEmpty;
  }

  subscribe(channel: string, table: string, handlers: ListenHandlers): Subscription {
    let subscribers = this.#subscribers.get(channel);
    if (!subscribers) this.#subscribers.set(channel, (subscribers = new Map()));
    subscribers.set(handlers, { told: false, table });
    if (!this.#client && !this.#timer) this.#connect();
    // Told on the next microtask, if the connection still listens then (it may have been lost meanwhile).
    else if (this.#listening.has(channel)) queueMicrotask(() => this.#listening.has(channel) && this.#tell(channel, true));
    else if (this.#client && this.#connected) this.#listen(this.#client, [channel]);
    let stopped = false;
    return {
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await this.#unsubscribe(channel, handlers);
      },
    };
  }

  async #unsubscribe(channel: string, handlers: ListenHandlers): Promise<void> {
    const subscribers = this.#subscribers.get(channel);
    if (!subscribers?.has(handlers)) return;
    subscribers.delete(handlers);
    handlers.state(false);
    if (subscribers.size > 0) return;
    this.#subscribers.delete(channel);
    const client = this.#client;
    if (this.#subscribers.size > 0) {
      if (client && this.#listening.delete(channel)) await this.#send(client, `UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
      return;
    }
    // The last subscriber: close the connection.
    this.#onEmpty();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#client = undefined;
    this.#connected = false;
    this.#listening.clear();
    if (client) await client.end().catch(() => {});
  }

  /** Tells a channel's subscribers whether it is listened to; each hears each change once. */
  #tell(channel: string, listening: boolean): void {
    const subscribers = this.#subscribers.get(channel);
    if (!subscribers) return;
    for (const [handlers, subscriber] of subscribers) {
      if (subscriber.told === listening) continue;
      subscriber.told = listening;
      handlers.state(listening);
    }
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#subscribers.size === 0) return;
    const attempt = new pg.Client({ ...this.#config, application_name: LISTENER_NAME });
    this.#client = attempt;
    this.#connected = false;
    this.#listening = new Set();
    this.#queue = Promise.resolve();
    attempt.on('error', (error) => this.#lost(attempt, error));
    attempt.on('end', () => this.#lost(attempt));
    attempt.on('notification', (message) => {
      const subscribers = this.#subscribers.get(message.channel);
      if (subscribers) for (const handlers of subscribers.keys()) handlers.message(message.payload ?? '');
    });
    // A listener alone must not keep Node running: a process that never calls disconnect() still exits.
    (attempt as unknown as { unref?: () => void }).unref?.();
    attempt.connect().then(
      () => {
        if (this.#client !== attempt) return;
        this.#connected = true;
        this.#listen(attempt, [...this.#subscribers.keys()]);
      },
      (error: Error) => this.#lost(attempt, error),
    );
  }

  #listen(client: pg.Client, channels: string[]): void {
    for (const channel of channels) {
      this.#send(client, `LISTEN ${pg.escapeIdentifier(channel)}`).then(
        () => {
          if (this.#client !== client) return;
          this.#delay = 100;
          // Its last subscriber left while the LISTEN was on its way: nobody wants that channel's notifications.
          if (!this.#subscribers.has(channel)) return void this.#send(client, `UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
          this.#listening.add(channel);
          this.#tell(channel, true);
        },
        (error: Error) => this.#lost(client, error),
      );
    }
  }

  /** Sends `text` on `client` once the statements sent before it on the connection have answered. */
  #send(client: pg.Client, text: string): Promise<unknown> {
    const sent = this.#queue.then(() => client.query(text));
    this.#queue = sent.catch(() => {});
    return sent;
  }

  #lost(gone: pg.Client, error?: Error): void {
    if (this.#client !== gone) return; // an earlier attempt, already replaced, or closed on purpose
    this.#client = undefined;
    this.#connected = false;
    this.#listening = new Set();
    gone.removeAllListeners('notification');
    gone.end().catch(() => {});
    for (const [channel, subscribers] of this.#subscribers) {
      this.#tell(channel, false);
      if (error) for (const [handlers, { table }] of subscribers) handlers.error(queryError(`LISTEN ${channel}`, table, error));
    }
    if (this.#subscribers.size === 0) return;
    this.#timer = setTimeout(() => this.#connect(), this.#delay);
    this.#timer.unref();
    this.#delay = Math.min(this.#delay * 2, 5000);
  }
}

/** One listening connection per pool: every store on that pool subscribes to it. */
const connections = new WeakMap<pg.Pool, ListenConnection>();

/**
 * Subscribes `handlers` to `channel` on the listening connection of `pool`'s stores (opened with
 * `config`, the pool's connection settings, when it is the first).
 */
export function listen(pool: pg.Pool, config: pg.ClientConfig, table: string, channel: string, handlers: ListenHandlers): Subscription {
  let connection = connections.get(pool);
  if (!connection) {
    const created = new ListenConnection(config, () => {
      if (connections.get(pool) === created) connections.delete(pool);
    });
    connections.set(pool, (connection = created));
  }
  return connection.subscribe(channel, table, handlers);
}
