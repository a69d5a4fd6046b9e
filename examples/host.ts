// host.ts: the same events, progress and cancellation as a local runner
import { ProcessingRequest, attachProgress } from 'processing-runner';
import { RemoteRunner } from 'processing-runner/bullmq';

const remote = new RemoteRunner<string, string>({ queueName: 'images', connection: 'redis://127.0.0.1:6379' });
using progress = attachProgress(remote);
remote.on('progress', (state, { step, total }) => console.log(`run ${String(state.runId)}: ${String(step)}/${String(total)}`));
const image = await remote.run(new ProcessingRequest('a lighthouse'), { timeoutMs: 60_000 });
console.log(image, progress.runs().length);
await remote.close();
