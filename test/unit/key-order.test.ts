import { expect } from 'chai';
import { KeyOrder, type Tracker } from '../../src/batching/key_order.js';
import { LARGE_CALL } from '../../src/in_turns.js';

/** A promise settled by hand, and a log of when ops ran. */
function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('KeyOrder', () => {
  it('a read after a write on one key waits for it; reads do not wait for each other; other keys never wait', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const write = deferred();
    const w = order.run(['k'], 'write', undefined, async () => {
      log.push('write starts');
      await write.promise;
      log.push('write ends');
    });
    const r1 = order.run(['k'], 'read', undefined, async () => void log.push('read k'));
    const other = order.run(['other'], 'write', undefined, async () => void log.push('write other'));
    await other;
    expect(log).to.deep.equal(['write starts', 'write other']);
    write.resolve();
    await Promise.all([w, r1]);
    expect(log).to.deep.equal(['write starts', 'write other', 'write ends', 'read k']);
    expect(order.size, 'nothing kept for idle keys').to.equal(0);
  });

  it('a write waits for the reads issued before it; a failed call does not block the key', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const read = deferred();
    const r = order.run(['k'], 'read', undefined, async () => {
      await read.promise;
      log.push('read');
      throw new Error('read failed');
    });
    const w = order.run(['k'], 'write', undefined, async () => void log.push('write'));
    await Promise.resolve();
    expect(log).to.deep.equal([]);
    read.resolve();
    await r.catch(() => {});
    await w;
    expect(log).to.deep.equal(['read', 'write']);
    expect(order.size).to.equal(0);
  });

  it('calls of one batcher do not wait for each other; a call of another waits for the tracked key', async () => {
    const idle = deferred();
    let busy = true;
    const batcher: Tracker = {
      whenIdle: (key, kind) => (busy && key === 'k' && kind === 'write' ? idle.promise : undefined),
      whenEmpty: () => (busy ? idle.promise : undefined),
    };
    const order = new KeyOrder(new Map([['rw', batcher]]));
    const log: string[] = [];
    await order.run(['k'], 'write', 'rw', async () => void log.push('same batcher'));
    const other = order.run(['k'], 'write', 'delete', async () => void log.push('other batcher'));
    await Promise.resolve();
    expect(log).to.deep.equal(['same batcher']);
    busy = false;
    idle.resolve();
    await other;
    expect(log).to.deep.equal(['same batcher', 'other batcher']);
  });

  it('a barrier runs after every call in flight and holds the calls issued after it', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const first = deferred();
    const a = order.run(['a'], 'read', undefined, async () => {
      await first.promise;
      log.push('a');
    });
    const barrier = order.barrier(async () => void log.push('barrier'));
    const b = order.run(['b'], 'read', undefined, async () => void log.push('b'));
    first.resolve();
    await Promise.all([a, barrier, b]);
    expect(log).to.deep.equal(['a', 'barrier', 'b']);
  });

  it('a barrier narrowed by its op lets the calls it held on other keys go, and keeps holding those on its keys', async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const finding = deferred();
    const deleting = deferred();
    const barrier = order.barrier(async (narrow) => {
      await finding.promise;
      narrow((id) => id === 'tagged');
      narrow(() => true); // only the first narrowing counts
      log.push('barrier narrowed');
      await deleting.promise;
      log.push('barrier ends');
    });
    const heldBefore = order.run(['other'], 'read', undefined, async () => void log.push('other (issued before narrowing)'));
    const tagged = order.run(['tagged'], 'write', undefined, async () => void log.push('tagged'));
    const both = order.run(['other2', 'tagged'], 'read', undefined, async () => void log.push('other2 and tagged'));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(log, 'nothing passes before the barrier knows its keys').to.deep.equal([]);
    finding.resolve();
    await heldBefore;
    await order.run(['after'], 'write', undefined, async () => void log.push('after (issued after narrowing)'));
    expect(log).to.deep.equal(['barrier narrowed', 'other (issued before narrowing)', 'after (issued after narrowing)']);
    deleting.resolve();
    await Promise.all([barrier, tagged, both]);
    expect(log.slice(3)).to.deep.equal(['barrier ends', 'tagged', 'other2 and tagged']);
    expect(order.size).to.equal(0);
  });

  it('a barrier that fails before it narrows releases every call it held', async () => {
    const order = new KeyOrder();
    const barrier = order.barrier(async () => Promise.reject(new Error('no keys')));
    const after = order.run(['k'], 'write', undefined, async () => 'ran');
    const failed = await barrier.then(() => undefined, (error: Error) => error.message);
    expect(failed).to.equal('no keys');
    expect(await after).to.equal('ran');
  });

  it(`a call on ${LARGE_CALL} keys or more (one entry, not one per key) orders the calls on its keys as any call does`, async () => {
    const order = new KeyOrder();
    const log: string[] = [];
    const ids = Array.from({ length: LARGE_CALL }, (_, i) => `w${i}`);
    const reading = deferred();
    const wideRead = order.run(ids, 'read', undefined, async () => {
      await reading.promise;
      log.push('wide read');
    });
    const writing = deferred();
    const wideWrite = order.run(ids.slice().reverse(), 'write', undefined, async () => {
      log.push('wide write starts');
      await writing.promise;
      log.push('wide write ends');
    });
    const readOfOne = order.run([`w${LARGE_CALL - 1}`], 'read', undefined, async () => void log.push('read of one'));
    const otherKey = order.run(['other'], 'write', undefined, async () => void log.push('other key'));
    const readAlongside = order.run(['x', 'w5'], 'read', undefined, async () => void log.push('read of x and w5'));
    await otherKey;
    expect(log, 'another key runs at once; the wide write waits for the wide read').to.deep.equal(['other key']);
    expect(order.size, 'two wide entries, one key, two keys').to.equal(2 * LARGE_CALL + 3);
    reading.resolve();
    await wideRead;
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).to.deep.equal(['other key', 'wide read', 'wide write starts']);
    writing.resolve();
    await Promise.all([wideWrite, readOfOne, readAlongside]);
    expect(log.slice(3).sort()).to.deep.equal(['read of x and w5', 'read of one', 'wide write ends'].sort());
    expect(log[3]).to.equal('wide write ends');
    const barrier = order.barrier(async () => void log.push('barrier'));
    await barrier;
    expect(order.size, 'nothing kept once they settled').to.equal(0);
  });

  it('a wide call can hand its own lookup of its keys (a Map by them), kept instead of a Set built again', async () => {
    const order = new KeyOrder();
    const ids = Array.from({ length: LARGE_CALL }, (_, i) => `m${i}`);
    const byId = new Map(ids.map((id) => [id, Buffer.alloc(1)]));
    const writing = deferred();
    const log: string[] = [];
    const write = order.run(ids, 'write', undefined, async () => {
      await writing.promise;
      log.push('wide write');
    }, byId);
    const read = order.run(['m7'], 'read', undefined, async () => void log.push('read of one of its keys'));
    await order.run(['m-other'], 'read', undefined, async () => void log.push('another key'));
    expect(log).to.deep.equal(['another key']);
    expect(order.size).to.equal(LARGE_CALL + 1);
    writing.resolve();
    await Promise.all([write, read]);
    expect(log).to.deep.equal(['another key', 'wide write', 'read of one of its keys']);
  });
});
