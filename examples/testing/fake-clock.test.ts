import { ProcessingRequest, ProcessingRunner, attachProgress, type RunProgress } from 'processing-runner';

test('attachProgress() - reports steps, with a fake clock', () => {
  let now = 0;
  const runner = new ProcessingRunner({
    processor: (steps: number, { reportProgress }) => {
      for (let step = 1; step <= steps; step++) {
        now += 1000; // each step "takes" a second
        reportProgress({ step, total: steps });
      }
      return 'done';
    },
  });
  const onUpdate = jest.fn<undefined, [RunProgress]>();
  using _tracker = attachProgress(runner, { now: () => now, onUpdate });

  expect(runner.runSync(new ProcessingRequest(4))).toBe('done');
  // After 2 of 4 steps, 2 s in and half done: 2 s to go.
  expect(onUpdate.mock.calls[3]?.[0].etaSeconds).toBe(2);
});
