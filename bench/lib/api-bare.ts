/**
 * The API benchmark's floor: a bare fastify server with taskapi's two read routes, the same query and path
 * validation (taskapi's ajv) and the same response schemas (so the same serializer), answering canned tasks taken
 * from taskapi itself. What taskapi spends above it is its own work: the view lookup, the page walk, the status and
 * next-run computation per task. It runs as a child process, like taskapi, so neither shares the client's core.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import Fastify from 'fastify';
import { Partitioners } from 'kafkajs';
import { ID_PARAMS, json, LIST_QUERY, paramsAjv, TASK_LIST_SCHEMA } from '../../src/api/route-schemas.js';
import { definitionFromInput, TASK_INPUT_SCHEMA } from '../../src/api/task-input.js';
import type { TaskInput } from '../../src/api/task-input.js';
import { TASK_SCHEMA } from '../../src/api/task-model.js';
import { encodeJson } from '../../src/shared/messages.js';
import { rawKafka } from './kafka-bench.js';

/** What the bare server answers: one task for any id, one page for any list query. */
export interface Canned {
  task: unknown;
  page: unknown;
}

/**
 * The create floor's Kafka side: POST /api/v1/tasks validates the body with taskapi's schema, makes the definition
 * as taskapi does and sends it with a raw idempotent kafkajs producer (acks=-1) to `topic`, then answers 201.
 */
export interface BareCreate {
  brokers: string[];
  topic: string;
  defaults: { topic: string; group: string; timeZone: string };
}

/** Serves `canned` on 127.0.0.1:`port` (0: any) until the process ends; resolves with the port. */
export async function serveBare(canned: Canned, port: number, create?: BareCreate): Promise<number> {
  const app = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
  app.setValidatorCompiler(({ schema }) => paramsAjv.compile(schema));
  if (create) {
    const producer = rawKafka(create.brokers, 'bench-bare-create').producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      maxInFlightRequests: 5,
    });
    await producer.connect();
    app.post('/api/v1/tasks', { schema: { body: TASK_INPUT_SCHEMA } }, async (req, reply) => {
      const def = definitionFromInput(req.body as TaskInput, create.defaults, Date.now());
      await producer.send({
        topic: create.topic,
        acks: -1,
        messages: [{ key: def.id, value: encodeJson(def) }],
      });
      return reply.code(201).send(def);
    });
  }
  app.get(
    '/api/v1/tasks',
    { schema: { querystring: LIST_QUERY, response: { 200: json(TASK_LIST_SCHEMA, 'One page') } } },
    () => canned.page,
  );
  app.get(
    '/api/v1/tasks/:id',
    { schema: { params: ID_PARAMS, response: { 200: json(TASK_SCHEMA, 'The task') } } },
    (_req, reply) => reply.header('etag', '"1"').send(canned.task),
  );
  app.get('/api/readyz', () => ({ status: 'ready', tasks: 1 }));
  await app.listen({ port, host: '127.0.0.1' });
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : port;
}

export interface BareServer {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `node <self> --child bare --canned <file> [...args]` (the benchmark's own file runs {@link serveBare} in
 * that mode) and resolves once it printed its port.
 */
export function startBare(self: string, cannedFile: string, args: string[] = []): Promise<BareServer> {
  const child: ChildProcess = spawn(
    process.execPath,
    [self, '--child', 'bare', '--canned', cannedFile, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve({ base: `http://127.0.0.1:${m[1]}`, pid: child.pid ?? -1, stop });
    });
    void exited.then(() => reject(new Error(`bare server exited before listening: ${out}`)));
  });
}
