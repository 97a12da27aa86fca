import { pathToFileURL } from 'node:url';
import { resolve as resolvePath } from 'node:path';
import { AppError } from '../shared/errors.js';
import { birthdayProcessor } from './birthday-processor.js';
import { invoiceProcessor } from './invoice-processor.js';
import { noopProcessor } from './noop-processor.js';
import { sleepProcessor } from './sleep-processor.js';
import type { Processor } from './types.js';

export const BUILT_IN_PROCESSORS: readonly Processor[] = [
  invoiceProcessor,
  birthdayProcessor,
  noopProcessor,
  sleepProcessor,
];

/** The last segment after `/` or `.`: `github.com/x/taskmanager/processor.InvoiceProcessor` → `InvoiceProcessor`. */
export function lastSegment(name: string): string {
  const cut = Math.max(name.lastIndexOf('/'), name.lastIndexOf('.'));
  return name.slice(cut + 1);
}

/**
 * Processors by name. Resolution: exact name, else the last segment after `/` or `.`
 * (docs/processors.md#writing-a-processor).
 */
export class ProcessorRegistry {
  private readonly byName = new Map<string, Processor>();

  constructor(processors: readonly Processor[] = BUILT_IN_PROCESSORS) {
    for (const p of processors) this.add(p);
  }

  add(p: Processor): void {
    if (typeof p.name !== 'string' || p.name === '' || typeof p.process !== 'function') {
      throw new AppError(
        'USAGE',
        'a processor needs a non-empty string `name` and a `process(task, ctx)` function',
      );
    }
    this.byName.set(p.name, p);
    for (const alias of p.aliases ?? []) this.byName.set(alias, p);
  }

  names(): string[] {
    return [...new Set([...this.byName.values()].map((p) => p.name))].sort();
  }

  resolve(name: string): Processor | undefined {
    return this.byName.get(name) ?? this.byName.get(lastSegment(name));
  }

  /**
   * Adds the processors a user module exports: any export that is a processor, or an array of them (e.g.
   * `export const processors = [...]`, `export default { name, process }`).
   */
  async loadModule(path: string): Promise<string[]> {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(resolvePath(path)).href)) as Record<string, unknown>;
    } catch (err) {
      throw new AppError(
        'USAGE',
        `--processors ${path}: cannot load module (${err instanceof Error ? err.message : String(err)})`,
        {
          cause: err,
        },
      );
    }
    const added: string[] = [];
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(visit);
      else if (isProcessor(v)) {
        this.add(v);
        added.push(v.name);
      }
    };
    Object.values(mod).forEach(visit);
    if (added.length === 0) {
      throw new AppError(
        'USAGE',
        `--processors ${path}: the module exports no processor ({ name, process(task, ctx) })`,
      );
    }
    return added;
  }
}

function isProcessor(v: unknown): v is Processor {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Processor).name === 'string' &&
    typeof (v as Processor).process === 'function'
  );
}
