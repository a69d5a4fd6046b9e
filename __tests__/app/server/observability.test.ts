import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { makeApp, SMALL, waitForEvent } from './helpers';

jest.setTimeout(30_000);

/** The value of one sample line of a Prometheus text page. */
function sample(page: string, line: string): number {
  const found = page.split('\n').find((entry) => entry.startsWith(`${line} `));
  if (found === undefined) throw new Error(`no sample ${line} in:\n${page}`);
  return Number(found.slice(line.length + 1));
}

test('GET /metrics - runs by outcome, phase histograms, queue, in flight and SSE gauges (Prometheus text)', async () => {
  const { app, dispose } = await makeApp();
  const long = (await app.inject({ method: 'POST', url: '/v1/runs', payload: { prompt: 'a long night', seed: 7, steps: 150, width: 64, height: 64 } })).json<{ id: string }>();
  await waitForEvent(app, long.id, (event) => event.event === 'start');
  const waiting = (await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL })).json<{ id: string }>();
  const during = await app.inject({ method: 'GET', url: '/metrics' });
  expect(during.statusCode).toBe(200);
  expect(during.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(sample(during.body, 'processing_queue_waiting')).toBe(1);
  expect(sample(during.body, 'processing_runs_in_flight')).toBe(1);
  expect(sample(during.body, 'processing_sse_clients')).toBe(0);
  expect(sample(during.body, 'processing_runs_total{outcome="succeeded"}')).toBe(0);

  await app.inject({ method: 'POST', url: `/v1/runs/${waiting.id}/cancel` });
  await app.inject({ method: 'POST', url: `/v1/runs/${long.id}/cancel` });
  await waitForEvent(app, long.id, (event) => event.event === 'end');
  const done = (await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL })).json<{ id: string }>();
  await waitForEvent(app, done.id, (event) => event.event === 'end');
  // The run's ending is in the store before the runner's `finalize` event (it is written inside
  // the finalize phase, so that a worker's record is durable before its job completes): the
  // phase histograms, fed by that event, follow a moment later.
  let after = '';
  for (let tries = 0; tries < 100 && !after.includes('processing_phase_duration_seconds_count{phase="finalize"} 1'); tries++) {
    after = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(sample(after, 'processing_runs_total{outcome="succeeded"}')).toBe(1);
  expect(sample(after, 'processing_runs_total{outcome="cancelled"}')).toBe(2);
  expect(sample(after, 'processing_runs_total{outcome="failed"}')).toBe(0);
  // The cancelled run completed prepare; the one that succeeded completed all three.
  expect(sample(after, 'processing_phase_duration_seconds_count{phase="prepare"}')).toBe(2);
  expect(sample(after, 'processing_phase_duration_seconds_count{phase="execute"}')).toBe(1);
  expect(sample(after, 'processing_phase_duration_seconds_count{phase="finalize"}')).toBe(1);
  expect(sample(after, 'processing_run_duration_seconds_count')).toBe(1);
  expect(sample(after, 'processing_queue_waiting')).toBe(0);
  await dispose();
});

test('tracing - the run span is a child of the traceparent of the request that submitted it, phases below it (real OTel SDK)', async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const { app, dispose } = await makeApp({ tracer: provider.getTracer('test') });
  try {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const parentId = 'b7ad6b7169203331';
    const created = await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL, headers: { traceparent: `00-${traceId}-${parentId}-01` } });
    const { id } = created.json<{ id: string }>();
    // Another run without a traceparent gets a trace of its own.
    const other = (await app.inject({ method: 'POST', url: '/v1/runs', payload: SMALL })).json<{ id: string }>();
    await waitForEvent(app, id, (event) => event.event === 'end');
    await waitForEvent(app, other.id, (event) => event.event === 'end');
    await provider.forceFlush();
    const spans = exporter.getFinishedSpans();
    const run = spans.find((span) => span.name === 'processing.run' && span.attributes['run.id'] === id);
    expect(run?.spanContext().traceId).toBe(traceId);
    expect(run?.parentSpanContext?.spanId).toBe(parentId);
    const phases = spans.filter((span) => span.parentSpanContext?.spanId === run?.spanContext().spanId).map((span) => span.name);
    expect(phases).toEqual(['processing.prepare', 'processing.execute', 'processing.finalize']);
    const otherRun = spans.find((span) => span.name === 'processing.run' && span.attributes['run.id'] === other.id);
    expect(otherRun?.spanContext().traceId).not.toBe(traceId);
    expect(otherRun?.parentSpanContext).toBeUndefined();
  } finally {
    await dispose();
    await provider.shutdown();
    propagation.disable();
    context.disable();
  }
});
