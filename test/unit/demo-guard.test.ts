import type { IncomingMessage } from 'node:http';
import { expect } from 'chai';
import { checkRequest } from '../../demo/guard.js';
import { HttpError } from '../../demo/http.js';

/** The status checkRequest answers a request with (200: let through). */
function status(listen: string, headers: Record<string, string>, url = '/'): number {
  try {
    checkRequest({ headers, url } as unknown as IncomingMessage, listen, 3000);
    return 200;
  } catch (error) {
    if (error instanceof HttpError) return error.status;
    throw error;
  }
}

describe('the dashboard request guard (Host, Origin, request target)', () => {
  const cases: Array<[string, string, Record<string, string>, number, string?]> = [
    ['its own address', '127.0.0.1', { host: '127.0.0.1:3000' }, 200],
    ['localhost for a loopback server', '127.0.0.1', { host: 'LOCALHOST:3000' }, 200],
    ['[::1] for a loopback server', '127.0.0.1', { host: '[::1]:3000' }, 200],
    ['its IPv6 address', '::1', { host: '[::1]:3000' }, 200],
    ['another name pointing here (DNS rebinding)', '127.0.0.1', { host: 'rebind.example:3000' }, 403],
    ['another port (a tunnel forwarding 8080 to this one)', '127.0.0.1', { host: 'localhost:8080' }, 200],
    ['no port', '127.0.0.1', { host: '127.0.0.1' }, 200],
    ['another name on another port', '127.0.0.1', { host: 'rebind.example:8080' }, 403],
    ['its own origin through a tunnel', '127.0.0.1', { host: 'localhost:8080', origin: 'http://localhost:8080' }, 200],
    ['no Host', '127.0.0.1', {}, 400],
    ['any IP address when listening on all of them', '0.0.0.0', { host: '192.168.1.20:3000' }, 200],
    ['a name when listening on all addresses', '0.0.0.0', { host: 'rebind.example:3000' }, 403],
    ['a LAN address when listening on loopback', '127.0.0.1', { host: '192.168.1.20:3000' }, 403],
    ['its own origin', '127.0.0.1', { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }, 200],
    ['another origin', '127.0.0.1', { host: '127.0.0.1:3000', origin: 'http://evil.example' }, 403],
    ['the null origin (a sandboxed frame, a file)', '127.0.0.1', { host: '127.0.0.1:3000', origin: 'null' }, 403],
    ['the same host over https (another origin)', '127.0.0.1', { host: '127.0.0.1:3000', origin: 'https://127.0.0.1:3000' }, 403],
    ['a malformed Host', '127.0.0.1', { host: '[::1:3000' }, 403],
  ];
  for (const [what, listen, headers, expected] of cases) {
    it(`${what}: ${expected}`, () => expect(status(listen, headers)).to.equal(expected));
  }
  it('a request target it cannot parse: 400', () => {
    expect(status('127.0.0.1', { host: '127.0.0.1:3000' }, '//[')).to.equal(400);
  });
});
