import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

import { makeApp, parseSse, SMALL, waitForEvent } from './helpers';

// `?access_token=` on GET /v1/runs/:id/events: the web page's EventSource cannot send headers.
jest.setTimeout(30_000);

const KEY = 'page-key-0123';
const WRONG = { message: 'Missing or wrong API key: send `Authorization: Bearer <key>`' };

let app: FastifyInstance;
let dispose: () => Promise<void>;
let id: string;

beforeAll(async () => {
  ({ app, dispose } = await makeApp({ apiKey: KEY }));
  const created = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL, headers: { authorization: `Bearer ${KEY}` } });
  expect(created.statusCode).toBe(202);
  id = created.json<{ id: string }>().id;
  await waitForEvent(app, id, (event) => event.event === 'end');
});

afterAll(async () => {
  await dispose();
});

function get(url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url, headers: { accept: 'text/event-stream', ...headers } });
}

describe('GET /v1/runs/:id/events?access_token=', () => {
  test('the key in access_token opens the stream', async () => {
    const response = await get(`/v1/runs/${id}/events?access_token=${KEY}`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream');
    expect(parseSse(response.body).at(-1)?.event).toBe('end');
  });

  test('works beside last_event_id', async () => {
    const response = await get(`/v1/runs/${id}/events?last_event_id=1&access_token=${KEY}`);
    expect(response.statusCode).toBe(200);
    expect(parseSse(response.body)[0]?.id).toBe('2');
  });

  test('a wrong or empty access_token is a 401', async () => {
    for (const token of ['wrong-key-0123', '', `${KEY}x`]) {
      const response = await get(`/v1/runs/${id}/events?access_token=${encodeURIComponent(token)}`);
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual(WRONG);
    }
  });

  test('an Authorization header wins: a wrong header is a 401 even with the right access_token', async () => {
    const response = await get(`/v1/runs/${id}/events?access_token=${KEY}`, { authorization: 'Bearer wrong-key-0123' });
    expect(response.statusCode).toBe(401);
  });

  test('no other route takes access_token', async () => {
    for (const url of [`/v1/runs/${id}?access_token=${KEY}`, `/v1/runs?access_token=${KEY}`, `/v1/runs/${id}/image?access_token=${KEY}`]) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode).toBe(401);
    }
  });
});
