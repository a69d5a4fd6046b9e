// The `processing-runner/diagnostics-channel` entry point. Kept apart from index.ts because it
// imports `node:diagnostics_channel`, which the main entry must not need: that one runs in
// browsers too. Node, Bun and Deno have the module.
export {
  attachDiagnosticsChannel,
  DIAGNOSTICS_CHANNEL_NAMES,
  type PhaseChannelMessage,
  type RunChannelMessage,
} from './instrumentation/diagnostics-channel.js';
