import { ProcessingRunner, ProcessingRequest } from 'processing-runner';

test('a jest.fn() spy as a finalize listener', async () => {
  const runner = new ProcessingRunner({ processor: (text: string) => text.toUpperCase() });
  const onFinalize = jest.fn();
  runner.on('finalize', onFinalize);

  const request = new ProcessingRequest('hi');
  await runner.run(request);
  expect(onFinalize).toHaveBeenCalledTimes(1);
  expect(onFinalize).toHaveBeenCalledWith(expect.objectContaining({ request }), 'HI');
});
