import { lastSegment } from './registry.js';

/**
 * What a consumer lets command tasks run (`--command-require-image`, `--command-images`, `--command-programs`).
 * An empty list allows anything; the container options still apply.
 */
export interface CommandPolicy {
  /** Refuse tasks without `image`: nothing runs on the host. @default false */
  requireImage?: boolean;
  /** Images a task may name: `busybox` (any tag or digest of it), `busybox:1.36`, `registry.corp/tools/*`. */
  images?: readonly string[];
  /** Programs (`command[0]`) a task may run, on the host or in a container: bare names or absolute paths. */
  programs?: readonly string[];
}

/** The names a task gives CommandProcessor by, as consumers resolve them (exact, or the last segment). */
const COMMAND_NAMES = new Set(['commandprocessor', 'command']);

/** Whether a task naming `processor` runs CommandProcessor on the consumers (any case, as a stricter test). */
export function isCommandProcessorName(processor: string): boolean {
  return (
    COMMAND_NAMES.has(processor.toLowerCase()) || COMMAND_NAMES.has(lastSegment(processor).toLowerCase())
  );
}

/** `*` stands for one or more characters within one path segment (never `/`); everything else is literal. */
function globMatches(pattern: string, text: string): boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${source}$`).test(text);
}

/** `registry:5000/team/app:1.2@sha256:…` → `registry:5000/team/app`: the reference without tag and digest. */
function imageName(ref: string): string {
  const noDigest = ref.split('@')[0]!;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

function imageAllowed(ref: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    !p.includes('*') && imageName(p) === p ? imageName(ref) === p : globMatches(p, ref),
  );
}

/** A path with `.` or `..` segments could leave the directory a pattern names: never allowed by a pattern. */
function programAllowed(program: string, patterns: readonly string[]): boolean {
  if (program.split('/').some((s) => s === '.' || s === '..')) return false;
  return patterns.some((p) => globMatches(p, program));
}

/** Variables that choose which file a bare program name is, or what it loads, wherever it runs. */
const LOADER_ENV = /^(PATH|LD_.*|DYLD_.*)$/;

/** `--command-programs` entries are bare names (looked up in PATH) or absolute paths; a problem, else undefined. */
export function programPatternProblem(p: string): string | undefined {
  if (p.includes('/') && !p.startsWith('/'))
    return `${JSON.stringify(p)} is neither a bare program name nor an absolute path`;
  if (p.split('/').some((s) => s === '.' || s === '..')) return `${JSON.stringify(p)} has a . or .. segment`;
  return undefined;
}

const listed = (xs: readonly string[]): string => xs.join(', ');

/** Why the policy refuses to run this command, in a few words; undefined when it may run. */
export function commandRefusal(
  p: { command: string[]; image?: string; env?: Record<string, string> },
  policy: CommandPolicy,
): string | undefined {
  const program = p.command[0]!;
  if (p.image === undefined && policy.requireImage)
    return `it would run ${JSON.stringify(program)} on the host, and this consumer runs only containers (--command-require-image): give the payload an image`;
  const images = policy.images ?? [];
  if (p.image !== undefined && images.length > 0 && !imageAllowed(p.image, images))
    return `image ${JSON.stringify(p.image)} is not in --command-images (${listed(images)})`;
  const programs = policy.programs ?? [];
  if (programs.length === 0) return undefined;
  if (!programAllowed(program, programs))
    return `program ${JSON.stringify(program)} is not in --command-programs (${listed(programs)})`;
  const loader = Object.keys(p.env ?? {}).filter((k) => LOADER_ENV.test(k));
  if (loader.length > 0)
    return `its env sets ${listed(loader)}, which would choose what ${JSON.stringify(program)} runs; --command-programs does not allow that`;
  return undefined;
}
