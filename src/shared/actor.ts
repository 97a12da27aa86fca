import { hostname, userInfo } from 'node:os';

/** `user@host` of this process: who sent a scheduler command, who changed users at the shell. */
export function actor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return `${user}@${hostname()}`;
}
