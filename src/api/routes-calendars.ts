import type { FastifyInstance } from 'fastify';
import { principalOf } from './auth/guard.js';
import { CALENDAR_INPUT_SCHEMA, CALENDAR_SCHEMA, parseCalendarInput } from './calendar-service.js';
import type { CalendarInput, CalendarService } from './calendar-service.js';
import { BODY_ERRORS, COMMON_ERRORS, itemsOf, json, noContent, route } from './route-schemas.js';
import { CALENDAR_NAME_PATTERN } from '../shared/schedule/calendar.js';

const BASE = '/api/v1/calendars';
type NameParams = { Params: { name: string } };

const NAME_PARAMS = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: CALENDAR_NAME_PATTERN } },
} as const;

const LIST = route('viewer', {
  tags: ['calendars'],
  summary: 'List the exclusion calendars tasks may name, by name',
  response: { 200: json(itemsOf(CALENDAR_SCHEMA), 'Every calendar'), ...COMMON_ERRORS },
});

const GET = route('viewer', {
  tags: ['calendars'],
  summary: 'Get a calendar',
  params: NAME_PARAMS,
  response: { 200: json(CALENDAR_SCHEMA, 'The calendar'), ...COMMON_ERRORS },
});

const PUT = route(
  'operator',
  {
    tags: ['calendars'],
    summary:
      'Create or replace a calendar: the tasks naming it skip its dates (in their own zone) from their next fire on',
    params: NAME_PARAMS,
    body: CALENDAR_INPUT_SCHEMA,
    response: {
      200: json(CALENDAR_SCHEMA, 'Replaced; stored in Kafka and read back'),
      201: json(CALENDAR_SCHEMA, 'Created; stored in Kafka and read back'),
      ...BODY_ERRORS,
    },
  },
  parseCalendarInput,
);

const DELETE = route('operator', {
  tags: ['calendars'],
  summary: 'Delete a calendar no task names (409 names the tasks that do)',
  params: NAME_PARAMS,
  response: { 204: noContent('Deleted'), ...BODY_ERRORS },
});

/** `/api/v1/calendars…` (docs/http-api.md#calendars). */
export function registerCalendarRoutes(app: FastifyInstance, calendars: CalendarService): void {
  const byName = `${BASE}/:name`;
  app.get(BASE, LIST, () => ({ items: calendars.list() }));
  app.get<NameParams>(byName, GET, (req) => calendars.get(req.params.name));
  app.put<NameParams & { Body: CalendarInput }>(byName, PUT, async (req, reply) => {
    const { calendar, created } = await calendars.put(req.params.name, req.body, principalOf(req));
    if (created) void reply.header('location', `${BASE}/${encodeURIComponent(calendar.name)}`);
    return reply.code(created ? 201 : 200).send(calendar);
  });
  app.delete<NameParams>(byName, DELETE, async (req, reply) => {
    await calendars.remove(req.params.name, principalOf(req));
    return reply.code(204).send();
  });
}
