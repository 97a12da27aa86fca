import type { FieldError } from './task-input.js';

/** An RFC 9457 problem document (`application/problem+json`). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  /** Every validation error, each located by a JSON pointer. */
  errors?: FieldError[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  428: 'Precondition Required',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** An error a route answers with: its status, a one-line detail, and the field errors when there are any. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: FieldError[],
    /** Response headers that go with it (Retry-After, WWW-Authenticate). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function problemOf(status: number, detail: string, instance?: string, errors?: FieldError[]): Problem {
  const title = TITLES[status] ?? 'Error';
  return {
    type: 'about:blank',
    title,
    status,
    detail,
    ...(instance === undefined ? {} : { instance }),
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
}
