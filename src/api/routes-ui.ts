import { readdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './problem.js';

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/**
 * The dashboard at `/ui`: static files built by `npm run build` (copied next to this module), read once. The files
 * are public; everything they show comes from the API with the logged-in user's token.
 */
export function registerUiRoutes(app: FastifyInstance): void {
  const dir = new URL('./ui/', import.meta.url);
  const files = new Map<string, { type: string; body: Buffer }>();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // Not built (running from src without `npm run build`): /ui answers 404 with the reason.
  }
  for (const name of names) {
    const type = TYPES[name.split('.').pop() ?? ''];
    if (type) files.set(name, { type, body: readFileSync(new URL(name, dir)) });
  }
  const send = (name: string) => {
    const f = files.get(name);
    if (!f)
      throw new ApiError(
        404,
        files.size === 0 ? 'the dashboard is not built: run npm run build' : `no ${name} in the dashboard`,
      );
    return f;
  };
  const opts = { config: { access: 'public' as const }, schema: { hide: true } };
  app.get('/ui', opts, (_req, reply) => {
    const f = send('index.html');
    return reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  });
  app.get<{ Params: { file: string } }>('/ui/:file', opts, (req, reply) => {
    const f = send(req.params.file);
    return reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  });
}
