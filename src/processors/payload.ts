import { Ajv } from 'ajv';
import type { Schema } from 'ajv';
import { NonRetriableError } from '../shared/errors.js';
import type { TaskMessage } from '../shared/codecs/task-message.js';

// strictRequired off: `anyOf: [{ required: ['subject'] }, …]` names properties declared at the top level.
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });

/**
 * A processor's payload check, run before any work: a payload that does not fit can never succeed, so it is a
 * `NonRetriableError` naming every problem (the task goes to the DLQ at once).
 */
export function payloadParser<T>(processor: string, schema: Schema): (task: TaskMessage) => T {
  const validate = ajv.compile<T>(schema);
  return (task) => {
    if (validate(task.payload)) return task.payload;
    const problems = (validate.errors ?? []).map((e) => {
      const p = e.params as { missingProperty?: string; additionalProperty?: string };
      const field = `payload${e.instancePath.replace(/\//g, '.')}`;
      if (p.missingProperty) return `${field}.${p.missingProperty} is required`;
      if (p.additionalProperty) return `${field}.${p.additionalProperty} is not a known field`;
      return `${field} ${e.message ?? e.keyword}`;
    });
    throw new NonRetriableError(`${processor}: invalid payload: ${problems.join('; ')}`);
  };
}
