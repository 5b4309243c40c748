/**
 * The dashboard's HTTP server (node:http): the page and its assets from demo/public, Chart.js from
 * node_modules (nothing from a CDN), and the panels' JSON routes. Every failure is answered with a JSON
 * `{ error }` and a status (4xx for bad input), never a stack trace.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DemoContext, Routes } from './context.js';
import { checkRequest } from './guard.js';
import { errorResponse, HttpError, readJson, sendJson } from './http.js';

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const CHART_JS = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: path.join(PUBLIC, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: path.join(PUBLIC, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: path.join(PUBLIC, 'style.css'), type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: path.join(PUBLIC, 'favicon.svg'), type: 'image/svg+xml' },
  '/vendor/chart.umd.min.js': { file: CHART_JS, type: 'text/javascript; charset=utf-8' },
};

/** The media type of a request's body, lower-cased, without its parameters (`charset`). */
const mediaType = (req: IncomingMessage) => String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
/** True when the request has a body, whatever its framing (a length, or chunks). */
const hasBody = (req: IncomingMessage) => Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;

/** `host`: the address it is told to listen on (`--host`), for the Host check (guard.ts). */
export function createDashboardServer(ctx: DemoContext, routes: Routes, host: string, log: (line: string) => void = console.error): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const address = server.address();
    const url = checkRequest(req, host, typeof address === 'object' && address ? address.port : 0);
    const method = req.method ?? 'GET';
    const asset = STATIC[url.pathname];
    if (asset) {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed on ${url.pathname}.`, { allow: 'GET, HEAD' });
      const { size } = await stat(asset.file);
      res.writeHead(200, { 'content-type': asset.type, 'content-length': size, 'cache-control': 'no-cache' });
      if (method === 'HEAD') res.end();
      else createReadStream(asset.file).pipe(res);
      return;
    }
    const route = routes[`${method} ${url.pathname}`];
    if (!route) {
      const allowed = Object.keys(routes)
        .filter((r) => r.endsWith(` ${url.pathname}`))
        .map((r) => r.slice(0, r.indexOf(' ')));
      if (allowed.length > 0) throw new HttpError(405, `${method} is not allowed on ${url.pathname}.`, { allow: allowed.join(', ') });
      throw new HttpError(404, `No such page: ${url.pathname}`);
    }
    if (method === 'POST' && hasBody(req) && mediaType(req) !== 'application/json') {
      throw new HttpError(415, 'Send the request body as application/json.');
    }
    const body = method === 'POST' ? await readJson(req) : {};
    sendJson(res, 200, await route(body, ctx, url.searchParams));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The client hung up (mid-body, or before the answer): no one to answer, and not the server's failure.
      if (req.socket.destroyed || res.destroyed) return void res.destroy();
      const { status, body, headers } = errorResponse(error);
      if (status >= 500) log(`${req.method} ${req.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (res.headersSent) res.destroy();
      else {
        // A body refused before it was read is left unread: close the connection rather than read it.
        if (status === 413 || status === 415) res.setHeader('connection', 'close');
        sendJson(res, status, body, headers);
      }
    });
  });
  return server;
}
