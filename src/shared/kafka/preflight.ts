import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Kafka, logLevel } from 'kafkajs';
import { AppError, errorMessage } from '../errors.js';
import { describeConnection } from './security.js';
import type { KafkaConnection } from './security.js';

/** What trying one broker told us. */
export type BrokerCheck =
  { ok: true; broker: string } | { ok: false; broker: string; fatal: boolean; reason: string };

/** TLS error codes of Node that mean "the broker's certificate is not trusted or not for this host". */
const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/**
 * Connects to each bootstrap broker in turn until one answers. A mistake that no retry can fix (wrong password,
 * untrusted certificate, TLS against plaintext, SASL missing) throws one line naming the broker, the user and the
 * mechanism (exit 1); brokers that cannot be reached only return their reasons (the programs wait for Kafka).
 */
export async function preflight(brokers: readonly string[], conn: KafkaConnection): Promise<BrokerCheck[]> {
  const checks: BrokerCheck[] = [];
  for (const broker of brokers) {
    const check = await checkBroker(broker, conn);
    checks.push(check);
    if (check.ok) return checks;
    if (check.fatal) throw new AppError('KAFKA', check.reason);
  }
  return checks;
}

export async function checkBroker(broker: string, conn: KafkaConnection): Promise<BrokerCheck> {
  const first = await attempt(broker, conn);
  if (first.ok || !first.confirm) return first;
  // A closed connection is also what a broker that is going down does: only the same answer twice is a verdict.
  await new Promise((r) => setTimeout(r, 1000));
  const second = await attempt(broker, conn);
  return second.ok || second.confirm ? second : { ...second, fatal: false };
}

async function attempt(broker: string, conn: KafkaConnection): Promise<BrokerCheck & { confirm?: boolean }> {
  const kafka = new Kafka({
    brokers: [broker],
    clientId: 'taskmanager-preflight',
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    authenticationTimeout: 5000,
    requestTimeout: 5000,
    retry: { retries: 0 },
    ...(conn.ssl ? { ssl: conn.ssl } : {}),
    ...(conn.sasl ? { sasl: conn.sasl } : {}),
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    await admin.describeCluster();
    return { ok: true, broker };
  } catch (err) {
    return { ok: false, broker, ...(await explain(err, broker, conn)) };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** One line for a failed connection, and whether it is a mistake of configuration. Never quotes a secret. */
async function explain(
  err: unknown,
  broker: string,
  conn: KafkaConnection,
): Promise<{ fatal: boolean; reason: string; confirm?: boolean }> {
  const chain = causes(err);
  const e = {
    name: chain.map((c) => c.name).find((n) => n === 'KafkaJSSASLAuthenticationError'),
    type: chain.map((c) => c.type).find(Boolean),
    code: chain.map((c) => c.code).find((c) => typeof c === 'string'),
  };
  const message = errorMessage(err);
  const as = describeConnection(conn);
  if (e.name === 'KafkaJSSASLAuthenticationError' || e.type === 'SASL_AUTHENTICATION_FAILED') {
    const who = conn.principal ? `user ${conn.principal}` : 'the token';
    return {
      fatal: true,
      reason: `Kafka broker ${broker} refused ${who} (${conn.mechanism ?? 'SASL'}): authentication failed; check sasl.jaas.config in ${conn.source ?? 'the Kafka config'}`,
    };
  }
  if (/UNSUPPORTED_SASL_MECHANISM|not supported by the server|mechanism .* not enabled/i.test(message))
    return {
      fatal: true,
      reason: `Kafka broker ${broker} does not offer SASL mechanism ${conn.mechanism}: ${message}`,
    };
  const code = e.code ?? codeInMessage(message);
  if (code && CERT_CODES.has(code))
    return {
      fatal: true,
      reason: `TLS to Kafka broker ${broker} failed: ${tlsReason(code, message)}; check ssl.truststore.* in ${conn.source ?? 'the Kafka config'}`,
    };
  if (
    conn.ssl &&
    (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(message))
  )
    return {
      fatal: true,
      reason: `Kafka broker ${broker} does not speak TLS (security.protocol ${conn.protocol}): use PLAINTEXT or SASL_PLAINTEXT, or the broker's TLS port`,
    };
  if (
    conn.ssl &&
    /alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(message)
  )
    return {
      fatal: true,
      reason: `Kafka broker ${broker} refused ${conn.ssl.cert || conn.ssl.pfx ? 'our TLS client certificate' : 'a TLS client without a certificate'}: its listener wants mutual TLS with a certificate it trusts; check ssl.keystore.* in ${conn.source ?? 'the Kafka config'}`,
    };
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(`${code ?? ''} ${message}`))
    return { fatal: false, reason: `Kafka broker ${broker} cannot be reached: ${message}` };
  // The connection opened but nothing sensible came back: a listener that wants TLS or SASL we did not offer.
  if (!conn.ssl && (await speaksTls(broker)))
    return {
      fatal: true,
      reason: `Kafka broker ${broker} speaks TLS but security.protocol is ${conn.protocol}: set security.protocol=SSL or SASL_SSL in --kafka-config`,
    };
  if (!conn.sasl && /closed|ECONNRESET|EPIPE/i.test(message))
    return {
      fatal: true,
      confirm: true,
      reason: `Kafka broker ${broker} closed the connection (${as}): its listener probably requires SASL; set security.protocol=SASL_PLAINTEXT or SASL_SSL with sasl.mechanism and sasl.jaas.config in --kafka-config`,
    };
  return { fatal: false, reason: `Kafka broker ${broker} (${as}): ${message}` };
}

type Cause = { name?: string; code?: string; type?: string; cause?: unknown; originalError?: unknown };

/** The error and what it wraps (kafkajs's retrier wraps the socket's error, which has the TLS code). */
function causes(err: unknown): Cause[] {
  const out: Cause[] = [];
  for (let c = err as Cause | undefined; c && typeof c === 'object' && out.length < 8;) {
    out.push(c);
    c = (c.cause ?? c.originalError) as Cause | undefined;
  }
  return out;
}

function codeInMessage(message: string): string | undefined {
  return /\b(ERR_[A-Z_]+|[A-Z]+(?:_[A-Z]+){2,})\b/.exec(message)?.[1];
}

function tlsReason(code: string, message: string): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH')
    return `its certificate is not for this host name (${message.replace(/^.*?: /, '')}); use the name in the certificate, or ssl.endpoint.identification.algorithm= to turn the check off`;
  if (code === 'CERT_HAS_EXPIRED') return 'its certificate has expired';
  if (code === 'CERT_NOT_YET_VALID') return 'its certificate is not valid yet';
  return `its certificate is not signed by a trusted CA (${code})`;
}

/** Whether a TLS handshake with the broker completes (certificate unchecked: only the protocol is asked). */
function speaksTls(broker: string): Promise<boolean> {
  const cut = broker.lastIndexOf(':');
  const host = broker.slice(0, cut);
  const port = Number(broker.slice(cut + 1));
  return new Promise((resolve) => {
    const socket = tlsConnect(
      { host, port, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) },
      () => {
        socket.destroy();
        resolve(true);
      },
    );
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
}
