import { expect } from 'chai';
import { Batcher } from '../../src/batching/batcher.js';

describe('Batcher', () => {
  it('puts every call of one tick, .then continuations included, into one dispatch', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push(items);
      return items.map((i) => i * 2);
    }, { maxBatchSize: 100, maxInFlight: 4 });
    const direct = [1, 2, 3].map((i) => batcher.load(i));
    const chained = Promise.resolve().then(() => batcher.load(4));
    expect(await Promise.all([...direct, chained])).to.deep.equal([2, 4, 6, 8]);
    expect(batches).to.deep.equal([[1, 2, 3, 4]]);
    expect(await batcher.load(5)).to.equal(10); // a later tick: a new batch
    expect(batches).to.have.length(2);
  });

  it('splits at maxBatchSize', async () => {
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      return items;
    }, { maxBatchSize: 3, maxInFlight: 4 });
    await Promise.all(Array.from({ length: 8 }, (_, i) => batcher.load(i)));
    expect(sizes).to.deep.equal([3, 3, 2]);
  });

  it('rejects only the caller whose result is an Error', async () => {
    const batcher = new Batcher<number, number>(async (items) => items.map((i) => (i === 2 ? new Error(`bad ${i}`) : i)), { maxBatchSize: 10, maxInFlight: 4 });
    const outcomes = await Promise.allSettled([1, 2, 3].map((i) => batcher.load(i)));
    expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason.message).to.equal('bad 2');
  });

  it('rejects every caller when the batch fails, throws synchronously, or returns the wrong count', async () => {
    for (const dispatch of [
      async () => {
        throw new Error('statement failed');
      },
      () => {
        throw new Error('sync failure');
      },
      async () => [1],
    ]) {
      const batcher = new Batcher<number, number>(dispatch as never, { maxBatchSize: 10, maxInFlight: 4 });
      const outcomes = await Promise.allSettled([1, 2].map((i) => batcher.load(i)));
      expect(outcomes.every((o) => o.status === 'rejected')).to.equal(true);
    }
  });

  it('holds calls made while maxInFlight batches run, and sends them together when one completes', async () => {
    const sizes: number[] = [];
    const releases: Array<() => void> = [];
    const batcher = new Batcher<number, number>((items) => {
      sizes.push(items.length);
      return new Promise((resolve) => releases.push(() => resolve(items)));
    }, { maxBatchSize: 100, maxInFlight: 1 });
    const first = batcher.load(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sizes).to.deep.equal([1]); // running
    const waiting = [1, 2, 3].map((i) => batcher.load(i));
    await new Promise((resolve) => setImmediate(resolve));
    expect(sizes).to.deep.equal([1]); // held: the only slot is busy
    const released = first.then(() => batcher.load(4)); // a caller released by the completion joins
    releases.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sizes).to.deep.equal([1, 4]);
    releases.shift()!();
    expect(await Promise.all([...waiting, released])).to.deep.equal([1, 2, 3, 4]);
  });

  it('does not fragment under a mixed load: calls released at different times merge again', async () => {
    const sizes: number[] = [];
    const delay = () => new Promise((resolve) => setTimeout(resolve, 1));
    const make = () => new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      await delay();
      return items;
    }, { maxBatchSize: 500, maxInFlight: 1 });
    const gets = make();
    const sets = make();
    let next = 0;
    await Promise.all(Array.from({ length: 20 }, async () => {
      for (let i = next++; i < 2000; i = next++) await (i % 10 === 0 ? sets.load(i) : gets.load(i));
    }));
    // Unlimited, this load ran ~1,250 batches of ~1.6 calls; held batches keep them large.
    expect(sizes.length).to.be.lessThan(400);
  });

  it('cuts a batch that starts idle into two halves that stay apart, and never cuts one while the other runs', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push([...items]);
      await new Promise((resolve) => setTimeout(resolve, 1));
      return items;
    }, { maxBatchSize: 500, maxInFlight: 2, splitWhenIdle: 8 });
    expect(await Promise.all([1, 2, 3].map((i) => batcher.load(i)))).to.deep.equal([1, 2, 3]); // under 8: whole
    batches.length = 0;
    let next = 0;
    await Promise.all(Array.from({ length: 20 }, async () => {
      for (let i = next++; i < 400; i = next++) expect(await batcher.load(i)).to.equal(i);
    }));
    expect(batches[0]).to.deep.equal(Array.from({ length: 10 }, (_, i) => i)); // first half, in call order
    expect(batches[1]).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 10));
    // Each half's callers come back together: halves of ten all along, not ever smaller pieces.
    expect(batches.slice(0, -2).every((batch) => batch.length === 10)).to.equal(true);
  });

  describe('a late batch', () => {
    /** A batcher whose batches containing 'stuck' wait until released; records each dispatch. */
    function stalling() {
      const dispatched: string[][] = [];
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const batcher = new Batcher<string, string>(
        async (items) => {
          dispatched.push(items);
          if (items.includes('stuck')) await released;
          return items.map((item) => `${item}!`);
        },
        { maxBatchSize: 10, maxInFlight: 1, lateAfterMs: 20, keyOf: (item) => item.split('#')[0]! },
      );
      return { batcher, dispatched, release };
    }
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    };

    it('stops holding back the next batches once lateAfterMs passed', async () => {
      const { batcher, dispatched, release } = stalling();
      const stuck = batcher.load('stuck');
      await until(() => dispatched.length === 1);
      const other = batcher.load('other'); // waits: the slot is taken, the batch is not late yet
      expect(dispatched).to.have.length(1);
      expect(await other).to.equal('other!'); // dispatched once the first batch is late
      release();
      expect(await stuck).to.equal('stuck!');
    });

    it("holds later calls on a late batch's keys until it completes, in call order", async () => {
      const { batcher, dispatched, release } = stalling();
      const stuck = batcher.load('stuck');
      await until(() => dispatched.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 40)); // late now
      const order: string[] = [];
      const sameKey = [batcher.load('stuck#2'), batcher.load('stuck#3')].map((p) => p.then((v) => order.push(v)));
      expect(await batcher.load('free')).to.equal('free!');
      expect(dispatched.flat()).to.not.include('stuck#2');
      release();
      await Promise.all([stuck, ...sameKey]);
      expect(order).to.deep.equal(['stuck#2!', 'stuck#3!']);
      expect(dispatched.at(-1)).to.deep.equal(['stuck#2', 'stuck#3']);
    });

    it('settles a caller whose result is a promise when it settles, keeping the batch in flight (and its keys pinned) until then', async () => {
      let finish!: (value: string) => void;
      const later = new Promise<string>((resolve) => (finish = resolve));
      const dispatched: string[][] = [];
      const batcher = new Batcher<string, string>(
        async (items) => {
          dispatched.push(items);
          return items.map((item) => (item === 'retried' ? later : `${item}!`));
        },
        { maxBatchSize: 10, maxInFlight: 1, lateAfterMs: 20, keyOf: (item) => item },
      );
      const [retried, quick] = [batcher.load('retried'), batcher.load('quick')];
      expect(await quick).to.equal('quick!'); // answered at once
      await new Promise((resolve) => setTimeout(resolve, 40)); // the batch is late: 'retried' is pinned
      const again = batcher.load('retried');
      expect(await batcher.load('other')).to.equal('other!');
      expect(dispatched.flat().filter((item) => item === 'retried')).to.have.length(1);
      finish('landed');
      expect(await retried).to.equal('landed');
      await again;
      expect(dispatched.at(-1), 'the held call goes once the promise settled').to.deep.equal(['retried']);
    });
  });
});
