/**
 * Property: the array literal send.ts writes for an array parameter (JSON.stringify, where node-postgres
 * escapes element by element) reads back in PostgreSQL as exactly the array node-postgres itself would send,
 * for any strings (quotes, backslashes, braces, commas, the word NULL, whitespace, control characters,
 * astral and lone surrogates), numbers, booleans and nulls; an array JSON would write another way is left
 * to node-postgres, and so still reads back the same.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { withArrayLiterals } from '../../src/execution/send.js';
import { adminPool } from '../helpers/db.js';
import { fcParams, propertyTimeout } from './fc-config.js';

/** Characters an array literal or JSON treats specially, and some that neither does. */
const tricky = fc.constantFrom('"', '\\', '{', '}', ',', ' ', '\t', '\n', '\u0001', '\u001f', 'NULL', 'null', 'é', '😀', '\ud800', '\udc00', '\u2028', 'a', '0');
const text = fc.oneof(fc.string(), fc.array(tricky, { maxLength: 8 }).map((parts) => parts.join('')));

describe('array parameters written as literals', function () {
  this.timeout(propertyTimeout());

  for (const [type, element] of [
    ['text[]', fc.option(text, { nil: null })],
    ['float8[]', fc.option(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })), { nil: null })],
    ['bool[]', fc.option(fc.boolean(), { nil: null })],
    ['bigint[]', fc.option(fc.maxSafeInteger(), { nil: null })],
    ['timestamptz[]', fc.option(fc.date({ min: new Date(0), max: new Date('9999-12-31T00:00:00Z'), noInvalidDate: true }).map((date) => date.toISOString()), { nil: null })],
  ] as const) {
    it(`a ${type} parameter reads back as node-postgres's own encoding does`, async () => {
      const pool = adminPool();
      await fc.assert(
        fc.asyncProperty(fc.array(element as fc.Arbitrary<unknown>, { maxLength: 12 }), async (array) => {
          // Text without NUL: PostgreSQL's text cannot hold it, whichever encoding sends it.
          if (array.some((value) => typeof value === 'string' && value.includes('\u0000'))) return;
          const [literal] = withArrayLiterals([array]);
          const theirs = await pool.query(`SELECT $1::${type} AS v`, [array]).then((r) => r.rows[0].v, (error: Error) => error.message);
          const ours = await pool.query(`SELECT $1::${type} AS v`, [literal]).then((r) => r.rows[0].v, (error: Error) => error.message);
          expect(ours).to.deep.equal(theirs);
        }),
        fcParams,
      );
    });
  }

  it('writes the common arrays as literals, and leaves to node-postgres what JSON would escape differently', () => {
    expect(withArrayLiterals([['a', 'b"c', 'd\\e', null], [1, 2], 'x'])).to.deep.equal(['{"a","b\\"c","d\\\\e",null}', '{1,2}', 'x']);
    const kept = [['a\nb'], ['\ud800'], [1n], [new Date(0)], [[1]], [Number.NaN]];
    for (const array of kept) expect(withArrayLiterals([array])[0]).to.equal(array);
  });
});
