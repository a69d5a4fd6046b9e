import { ProcessingRunner, ProcessingRequest } from 'processing-runner';

// The host's inner processing function (process_images_inner in the original).
function processImagesInner(prompt: string): { image: string } {
  return { image: `<image of ${prompt}>` };
}

const runner = new ProcessingRunner({ processor: processImagesInner });
runner.on('finalize', (state, result) => {
  console.log(`run ${state.runId} made ${result.image}`);
});

const result = await runner.run(new ProcessingRequest('a lighthouse'));
const same = runner.runSync(new ProcessingRequest('a lighthouse')); // synchronous phases only
console.log(result, same); // { image: '<image of a lighthouse>' } twice
