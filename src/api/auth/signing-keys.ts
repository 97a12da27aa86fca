import { createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { AppError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** The key access tokens are signed with, and every key they are accepted from (rotation), by `kid`. */
export interface SigningKeys {
  signing: { kid: string; key: KeyObject };
  verifying: Map<string, KeyObject>;
}

export const GENERATED_KEY_FILE = 'jwt-signing-key.pem';

/**
 * A secret for `purpose` that every instance signing with the same key derives alike, and nobody without the key can
 * (HKDF over the private key): it names what the instances share in Kafka but must not store in clear.
 */
export function derivedSecret(keys: SigningKeys, purpose: string): Buffer {
  const ikm = keys.signing.key.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), `taskapi ${purpose}`, 32));
}

async function kidOf(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey));
}

function parseKey(pem: string, file: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${key.asymmetricKeyType ?? 'unknown'} key`);
    return key;
  } catch (err) {
    throw new AppError(
      'USAGE',
      `${file}: not an Ed25519 private key in PEM (${errorMessage(err)}); make one with: openssl genpkey -algorithm ed25519 -out ${file}`,
    );
  }
}

/**
 * A private key other users can read signs tokens anyone on the host can forge: refuse to start, saying the fix
 * (a warning was easy to miss, and the key stayed exposed).
 */
async function refuseIfOthersCanRead(file: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new AppError(
      'USAGE',
      `JWT key file ${file} can be read by other users (mode ${mode.toString(8).padStart(4, '0')}): run chmod 600 ${file}`,
    );
}

/**
 * Loads the signing key from `keyFile`, or from the data directory, where it is generated once (mode 0600) when
 * missing: never a key in the repository. Instances behind one load balancer must share the key (the same file).
 * `previousKeyFiles` are accepted for verification only, so tokens signed before a rotation stay valid until they
 * expire.
 */
export async function loadSigningKeys(
  o: { keyFile?: string; dataDir: string; previousKeyFiles: string[] },
  logger: Logger,
): Promise<SigningKeys> {
  let file = o.keyFile;
  let pem: string;
  if (file) pem = await readFile(file, 'utf8');
  else {
    file = join(o.dataDir, GENERATED_KEY_FILE);
    await mkdir(o.dataDir, { recursive: true, mode: 0o700 });
    const fresh = generateKeyPairSync('ed25519')
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    try {
      // 'wx': of two instances starting on one data directory, one writes, both use its key.
      await writeFile(file, fresh, { flag: 'wx', mode: 0o600 });
      logger.info(
        `generated a JWT signing key in ${file} (mode 0600); instances behind one address must share it`,
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    pem = await readFile(file, 'utf8');
  }
  await refuseIfOthersCanRead(file);
  const key = parseKey(pem, file);
  const kid = await kidOf(createPublicKey(key));
  const verifying = new Map<string, KeyObject>([[kid, createPublicKey(key)]]);
  for (const f of o.previousKeyFiles) {
    await refuseIfOthersCanRead(f);
    const old = createPublicKey(parseKey(await readFile(f, 'utf8'), f));
    verifying.set(await kidOf(old), old);
  }
  return { signing: { kid, key }, verifying };
}
