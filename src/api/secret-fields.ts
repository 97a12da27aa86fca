import { REDACTED } from '../shared/redacted.js';

/** Parts of a field name, once lower-cased and stripped of `-`, `_`, `.` and spaces, that say it holds a secret. */
const SECRET_PARTS = [
  'token',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'authorization',
  'apikey',
  'accesskey',
  'privatekey',
  'cookie',
  'credential',
];
/** Whole names too short to look for inside others (`author`, `compass`). */
const SECRET_NAMES = new Set(['auth', 'pass', 'pwd']);

/** `X-Api-Key`, `access_token`, `smtpPassword`, `Authorization`, `Set-Cookie`, `private_key_pem`: yes. */
export function isSecretField(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_. ]/g, '');
  return SECRET_NAMES.has(n) || SECRET_PARTS.some((p) => n.includes(p));
}

/**
 * `value` with the value of every field named like a secret, at any depth, replaced by `[redacted]` (whatever it
 * held: a string, a secret reference, an object). Returns `value` itself when nothing is redacted.
 */
export function redactSecretFields(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(redactSecretFields);
    return items.some((x, i) => x !== value[i]) ? items : value;
  }
  if (typeof value !== 'object' || value === null) return value;
  let changed = false;
  const entries = Object.entries(value).map(([k, v]) => {
    const shown = isSecretField(k) ? REDACTED : redactSecretFields(v);
    if (shown !== v) changed = true;
    return [k, shown] as const;
  });
  return changed ? Object.fromEntries(entries) : value;
}
