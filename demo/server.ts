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
import { errorResponse, HttpError, readJson, sendJson } from './http.js';

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const CHART_JS = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: path.join(PUBLIC, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: path.join(PUBLIC, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: path.join(PUBLIC, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/chart.umd.min.js': { file: CHART_JS, type: 'text/javascript; charset=utf-8' },
};

export function createDashboardServer(ctx: DemoContext, routes: Routes, log: (line: string) => void = console.error): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const asset = STATIC[url.pathname];
    if (asset && (method === 'GET' || method === 'HEAD')) {
      const { size } = await stat(asset.file);
      res.writeHead(200, { 'content-type': asset.type, 'content-length': size, 'cache-control': 'no-cache' });
      if (method === 'HEAD') res.end();
      else createReadStream(asset.file).pipe(res);
      return;
    }
    const route = routes[`${method} ${url.pathname}`];
    if (!route) {
      const known = Object.keys(routes).some((r) => r.endsWith(` ${url.pathname}`));
      throw new HttpError(known ? 405 : 404, known ? `${method} is not allowed on ${url.pathname}.` : `No such page: ${url.pathname}`);
    }
    if (method === 'POST' && !String(req.headers['content-type'] ?? '').startsWith('application/json') && Number(req.headers['content-length'] ?? 0) > 0) {
      throw new HttpError(415, 'Send the request body as application/json.');
    }
    const body = method === 'POST' ? await readJson(req) : {};
    sendJson(res, 200, await route(body, ctx, url.searchParams));
  };

  return createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const { status, body } = errorResponse(error);
      if (status >= 500) log(`${req.method} ${req.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (res.headersSent) res.destroy();
      else {
        // A body refused before it was read is left unread: close the connection rather than read it.
        if (status === 413) res.setHeader('connection', 'close');
        sendJson(res, status, body);
      }
    });
  });
}
