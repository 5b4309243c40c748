import { expect } from 'chai';
import { InvalidDurationError, parseDuration } from '../../src/index.js';
import { rejects } from '../helpers/assert.js';

describe('parseDuration', () => {
  const cases: Array<[string | number, number]> = [
    [0, 0],
    [1500, 1500],
    ['500ms', 500],
    ['10s', 10_000],
    ['20m', 1_200_000],
    ['1h30m', 5_400_000],
    ['1h 30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['1d', 86_400_000],
    ['2w', 1_209_600_000],
    ['1m1m', 120_000], // repeated units add up, as in the Python library
    ['2h30s', 7_230_000],
    ['0s', 0],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${JSON.stringify(input)} as ${expected} ms`, () => {
      expect(parseDuration(input, 'ttl')).to.equal(expected);
    });
  }

  const bad: unknown[] = [-1, Number.NaN, Number.POSITIVE_INFINITY, '', '10', 'abc', '10 s', '-5m', '1H', '5min', null, {}, '1e3s'];
  for (const input of bad) {
    it(`rejects ${typeof input === 'number' ? String(input) : JSON.stringify(input)} naming what it was for`, async () => {
      const error = await rejects(() => parseDuration(input, 'ttl'), InvalidDurationError, /Invalid duration for ttl/);
      expect(error.code).to.equal('E_INVALID_DURATION');
      expect(error.message).to.match(/units: ms, s, m, h, d, w/);
    });
  }

  it('tells that a unit is missing from a bare number string', async () => {
    await rejects(() => parseDuration('10', 'ttl'), InvalidDurationError, /needs a unit/);
  });
});
