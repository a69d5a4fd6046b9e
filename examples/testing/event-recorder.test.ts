import { ProcessingRequest, ProcessingRunner, recordEvents } from 'processing-runner';

test('recordEvents() - the runner emitted what a failed run should', () => {
  const runner = new ProcessingRunner<number, number>({
    processor: () => {
      throw new Error('out of memory');
    },
  });
  using recorder = recordEvents(runner);

  expect(() => runner.runSync(new ProcessingRequest(1))).toThrow('out of memory');

  expect(recorder.names()).toEqual(['start', 'prepare', 'error']);
  const last = recorder.events.at(-1);
  if (last?.event !== 'error') throw new Error('expected an error event');
  expect(last.args[1].phase).toBe('execute'); // `args` is typed as error's tuple here
});
