/**
 * What the dashboard checks on every request before it routes it: a request target it can parse, a Host that
 * names this server, and no other site's Origin. The page drives real stores (counters, locks, a benchmark):
 * without these, any page the browser has open could POST to it, and a DNS-rebinding page (a name of its own that
 * it points at 127.0.0.1) could read its answers.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './http.js';

/** Names that always mean this machine. */
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);
const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * `host`: what the server was told to listen on (`--host`); `port`: the port it listens on (for the message). A
 * Host header must name that address, or loopback when it listens there or on every address (`0.0.0.0`: any IP
 * address is taken then, not a name, which is what DNS rebinding needs), on any port.
 */
export function checkRequest(req: IncomingMessage, host: string, port: number): URL {
  const hostHeader = req.headers.host;
  if (!hostHeader) throw new HttpError(400, 'The request has no Host header.');
  const name = hostName(hostHeader);
  const listen = host.replace(/^\[|\]$/g, '').toLowerCase();
  const allowed =
    name !== undefined &&
    (name === listen || ((LOOPBACK.has(listen) || WILDCARD.has(listen)) && LOOPBACK.has(name)) || (WILDCARD.has(listen) && isIP(name) !== 0));
  if (!allowed) throw new HttpError(403, `This dashboard answers requests for ${hostHeaderOf(listen, port)} only, not for "${hostHeader}".`);
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${hostHeader.toLowerCase()}`) {
    throw new HttpError(403, `Requests from another origin (${origin}) are refused: open the dashboard at http://${hostHeader}/ itself.`);
  }
  try {
    return new URL(req.url ?? '/', `http://${hostHeader}`);
  } catch {
    throw new HttpError(400, 'The request target is not a path this server can read.');
  }
}

/**
 * The lower-cased host name of a Host header, brackets removed; undefined when it is not one. Any port: a tunnel
 * or a container may forward another port to this one (ssh -L 8080:127.0.0.1:3000), and DNS rebinding needs a
 * name of the attacker's, which is what is checked.
 */
function hostName(header: string): string | undefined {
  const match = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(header.trim().toLowerCase());
  return match ? match[1]!.replace(/^\[|\]$/g, '') : undefined;
}

function hostHeaderOf(listen: string, port: number): string {
  const shown = WILDCARD.has(listen) ? 'this machine' : listen.includes(':') ? `[${listen}]` : listen;
  return `${shown}:${port}`;
}
