import { expect } from 'chai';
import { InvalidOptionError, InvalidValueError, ValueTooLargeError } from '../../src/index.js';
import { Payload } from '../../src/serialization.js';
import { rejects } from '../helpers/assert.js';

describe('Payload (serializers and compression)', () => {
  it('round-trips through a custom serializer', async () => {
    const upper = new Payload({
      serializer: { name: 'upper', serialize: (v) => String(v).toUpperCase(), deserialize: (b) => `<${b.toString()}>` },
    });
    const bytes = await upper.encode('abc');
    expect(bytes.toString()).to.equal('ABC');
    expect(await upper.decode(bytes)).to.equal('<ABC>');
  });

  it('compresses with brotli behind its own header tag, and leaves small values plain', async () => {
    const payload = new Payload({ compression: { algorithm: 'brotli', threshold: 100 } });
    const big = await payload.encode({ text: 'z'.repeat(5000) });
    expect([...big.subarray(0, 5)]).to.deep.equal([0x00, 0x63, 0x70, 0x7a, 0x62]);
    expect(await payload.decode(big)).to.deep.equal({ text: 'z'.repeat(5000) });
    const small = await payload.encode({ a: 1 });
    expect(small.toString()).to.equal('{"a":1}');
  });

  it('reports what a serializer cannot store as InvalidValueError: a BigInt, a circular object, a throwing custom serializer', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await rejects(new Payload().encode({ n: 1n }), InvalidValueError, /json serializer could not serialize.*BigInt/);
    await rejects(new Payload().encode(circular), InvalidValueError, /circular/);
    const failing = new Payload({ serializer: { name: 'mine', serialize: () => { throw new Error('nope'); }, deserialize: (b) => b } });
    await rejects(failing.encode('x'), InvalidValueError, /mine serializer could not serialize the value: nope/);
    const unreadable = new Payload({ serializer: { name: 'mine', serialize: (v) => String(v), deserialize: () => { throw new Error('bad bytes'); } } });
    await rejects(unreadable.decode(Buffer.from('x')), InvalidValueError, /mine serializer could not read.*bad bytes/);
  });

  it('refuses bad options, unstorable values and values over maxValueSize', async () => {
    await rejects(async () => new Payload({ serializer: 'yaml' as never }), InvalidOptionError, /serializer/);
    await rejects(async () => new Payload({ compression: { algorithm: 'zstd' as never } }), InvalidOptionError, /gzip' or 'brotli/);
    await rejects(async () => new Payload({ maxValueSize: 0 }), InvalidOptionError, /maxValueSize/);
    await rejects(new Payload().encode(undefined), InvalidValueError, /return null/);
    await rejects(new Payload({ serializer: 'raw' }).encode({}), InvalidValueError, /raw serializer/);
    await rejects(new Payload({ maxValueSize: 3 }).encode('abcd'), ValueTooLargeError, /6 bytes/);
  });
});
