import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { Option } from 'commander';
import { hostname } from 'node:os';
import { AppError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Traces (docs/operations.md#traces): the W3C `traceparent` every run carries as a record header, and the
 * OpenTelemetry spans of the scheduler, the consumer and taskapi, exported over OTLP/HTTP (JSON) when
 * `--otel-endpoint` is set. Every use of OpenTelemetry is in this module; without an endpoint the programs get
 * {@link NO_TRACING}, whose spans are one shared object that does nothing, so a fire or a task allocates nothing
 * for tracing.
 */

/** The record header (and HTTP header) holding a W3C trace context: `00-<trace id>-<parent id>-<flags>`. */
export const TRACEPARENT_HEADER = 'traceparent';

/** A parsed `traceparent` (W3C Trace Context, version 00). */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero: the span the receiver continues from. */
  spanId: string;
  /** The trace flags byte; bit 0: sampled. */
  flags: number;
}

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(-.*)?$/;

/**
 * A `traceparent` value as a {@link TraceContext}; undefined when it is none (absent, malformed, version ff, or an
 * all-zero id), as W3C Trace Context says a receiver must then start a new trace. A later version is read as 00 is.
 */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (value === undefined) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version = '', traceId = '', spanId = '', flags = '', rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** The `traceparent` value of a trace context (version 00). */
export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${(c.flags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * The `traceparent` to pass on for an incoming one when this program makes no span of its own: the same context in
 * version 00 form, or none when it is not a valid one.
 */
export function continuedTraceparent(value: string | undefined): string | undefined {
  const c = parseTraceparent(value);
  return c && formatTraceparent(c);
}

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

/** How a span ended: an error makes its status ERROR with that message. */
export interface SpanEnd {
  error?: string;
  attributes?: SpanAttributes;
}

/** One span of this module. */
export interface TraceSpan {
  /** The span's context as a `traceparent` value: what a record or request it causes carries. */
  readonly traceparent: string;
  setAttributes(attributes: SpanAttributes): void;
  end(how?: SpanEnd): void;
}

export interface SpanOptions {
  /** The parent: a span of this module, or a `traceparent` value (a malformed one starts a new trace). */
  parent?: TraceSpan | string | undefined;
  kind?: 'internal' | 'producer' | 'consumer' | 'server';
  /** Epoch ms; now when left out. */
  startTimeMs?: number;
  attributes?: SpanAttributes;
}

export interface Tracing {
  /** False for {@link NO_TRACING}: callers skip their tracing work entirely. */
  readonly enabled: boolean;
  startSpan(name: string, options?: SpanOptions): TraceSpan;
  /** Exports the spans still buffered (bounded in time), then stops. */
  shutdown(): Promise<void>;
}

const NO_SPAN: TraceSpan = {
  traceparent: '',
  setAttributes: () => undefined,
  end: () => undefined,
};

/** Tracing off: no span is made, nothing exported. */
export const NO_TRACING: Tracing = {
  enabled: false,
  startSpan: () => NO_SPAN,
  shutdown: () => Promise.resolve(),
};

/**
 * Runs `work` inside a span `name` (ended with its outcome, ERROR when it throws); with tracing off, `work` alone
 * with no span.
 */
export async function inSpan<T>(
  tracing: Tracing,
  name: string,
  options: SpanOptions,
  work: (span: TraceSpan | undefined) => Promise<T>,
): Promise<T> {
  if (!tracing.enabled) return work(undefined);
  const span = tracing.startSpan(name, options);
  try {
    const result = await work(span);
    span.end();
    return result;
  } catch (err) {
    span.end({ error: errorMessage(err) });
    throw err;
  }
}

/** `--otel-endpoint URL` (env OTEL_EXPORTER_OTLP_ENDPOINT) for the long-running programs. */
export function otelEndpointOption(): Option {
  return new Option(
    '--otel-endpoint <url>',
    'export OpenTelemetry traces over OTLP/HTTP (JSON) to this collector, e.g. http://127.0.0.1:4318 (off by default)',
  ).env('OTEL_EXPORTER_OTLP_ENDPOINT');
}

/**
 * Where spans are POSTed for the `--otel-endpoint` value: as OTEL_EXPORTER_OTLP_ENDPOINT is read, the base URL plus
 * `/v1/traces`, unless the URL names that path already. A USAGE error (exit 2) when it is no http(s) URL.
 */
export function tracesUrlOf(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new AppError('USAGE', `--otel-endpoint: not a URL: ${JSON.stringify(endpoint)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AppError('USAGE', `--otel-endpoint: expected an http(s) URL, got ${JSON.stringify(endpoint)}`);
  if (url.pathname.endsWith('/v1/traces')) return url.toString();
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.toString();
}

export interface TracingOptions {
  /** `--otel-endpoint`; no tracing when undefined or empty. */
  endpoint: string | undefined;
  /** service.name: taskscheduler, taskconsumer, taskapi. */
  service: string;
  version?: string;
  logger: Logger;
  /** How long buffered spans wait before being sent. @default 1000 */
  exportDelayMs?: number;
  /** How long one export may take, retries included, before its spans are dropped. @default 10000 */
  exportTimeoutMs?: number;
}

/** Spans kept waiting for export at most; past this they are dropped (counted in the warning). */
const MAX_QUEUED_SPANS = 65_536;
const EXPORT_BATCH = 4096;
const EXPORT_TIMEOUT_MS = 10_000;
/** How long a stop waits for the last spans to be exported. */
const SHUTDOWN_MS = 3000;
/** ExportResultCode.SUCCESS of @opentelemetry/core. */
const EXPORT_SUCCESS = 0;

/** The program's tracing: {@link NO_TRACING} without an endpoint, else spans exported to it. */
export function createTracing(o: TracingOptions): Tracing {
  if (o.endpoint === undefined || o.endpoint === '') return NO_TRACING;
  return new OtelTracing(tracesUrlOf(o.endpoint), o);
}

/**
 * The exporter, saying once in a warning line that the collector cannot be reached (and once when it can again):
 * a collector away never stops nor slows a program, its spans are dropped.
 */
class WarningExporter implements SpanExporter {
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly url: string,
    private readonly logger: Logger,
  ) {}

  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.inner.export(spans, (result) => {
      if (result.code !== EXPORT_SUCCESS && !this.failing) {
        this.failing = true;
        this.logger.warn(
          `cannot export traces to ${this.url} (${result.error ? errorMessage(result.error) : 'failed'}); ` +
            'spans are dropped until it answers',
        );
      } else if (result.code === EXPORT_SUCCESS && this.failing) {
        this.failing = false;
        this.logger.info(`exporting traces to ${this.url} again`);
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

const KINDS = {
  internal: SpanKind.INTERNAL,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  server: SpanKind.SERVER,
} as const;

class OtelSpan implements TraceSpan {
  readonly traceparent: string;

  constructor(readonly span: Span) {
    const c = span.spanContext();
    this.traceparent = formatTraceparent({ traceId: c.traceId, spanId: c.spanId, flags: c.traceFlags });
  }

  setAttributes(attributes: SpanAttributes): void {
    this.span.setAttributes(defined(attributes));
  }

  end(how: SpanEnd = {}): void {
    if (how.attributes) this.setAttributes(how.attributes);
    if (how.error !== undefined) this.span.setStatus({ code: SpanStatusCode.ERROR, message: how.error });
    this.span.end();
  }
}

function defined(a: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(a)) if (v !== undefined) out[k] = v;
  return out;
}

class OtelTracing implements Tracing {
  readonly enabled = true;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(url: string, o: TracingOptions) {
    const timeout = o.exportTimeoutMs ?? EXPORT_TIMEOUT_MS;
    const exporter = new WarningExporter(
      new OTLPTraceExporter({ url, timeoutMillis: timeout }),
      url,
      o.logger,
    );
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: o.service,
        ...(o.version === undefined ? {} : { [ATTR_SERVICE_VERSION]: o.version }),
        'host.name': hostname(),
        'process.pid': process.pid,
      }),
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          maxQueueSize: MAX_QUEUED_SPANS,
          maxExportBatchSize: EXPORT_BATCH,
          scheduledDelayMillis: o.exportDelayMs ?? 1000,
          exportTimeoutMillis: timeout,
        }),
      ],
    });
    this.tracer = this.provider.getTracer('taskmanager', o.version);
    o.logger.info(`exporting traces to ${url}`);
  }

  startSpan(name: string, options: SpanOptions = {}): TraceSpan {
    const span = this.tracer.startSpan(
      name,
      {
        kind: KINDS[options.kind ?? 'internal'],
        ...(options.startTimeMs === undefined ? {} : { startTime: options.startTimeMs }),
        ...(options.attributes ? { attributes: defined(options.attributes) } : {}),
      },
      contextOf(options.parent),
    );
    return new OtelSpan(span);
  }

  /** Bounded: a collector away must not hold a program's stop (its spans are then lost). */
  async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SHUTDOWN_MS);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), late]);
    clearTimeout(timer);
  }
}

/** The context a span starts in: its parent's, or none (a new trace). */
function contextOf(parent: TraceSpan | string | undefined): Context {
  if (parent instanceof OtelSpan) return trace.setSpan(ROOT_CONTEXT, parent.span);
  const c = typeof parent === 'string' ? parseTraceparent(parent) : undefined;
  if (!c) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: c.traceId,
    spanId: c.spanId,
    traceFlags: c.flags & TraceFlags.SAMPLED,
    isRemote: true,
  });
}
