/** What stable-diffusion-webui's progress arithmetic reads from its job state. */
export interface WebuiJobState {
  /** Images in the current job (0 when idle). */
  readonly jobCount: number;
  /** Images of the job already done. */
  readonly jobNo: number;
  /** The sampling step of the image being made. */
  readonly samplingStep: number;
  /** Its sampling steps (0 before sampling starts). */
  readonly samplingSteps: number;
  /** Seconds since the job began. */
  readonly elapsedSeconds: number;
}

/**
 * `progress` and `eta_relative` as `/sdapi/v1/progress` computes them in stable-diffusion-webui:
 * idle is 0 and 0; otherwise progress starts at 0.01 (so the ETA never divides by zero), adds
 * the share of finished images and the current image's share times `step / steps`; the ETA is
 * `elapsed / progress − elapsed` (computed before progress is capped at 1).
 */
export function webuiProgress(state: WebuiJobState): { readonly progress: number; readonly etaRelative: number } {
  const { jobCount, jobNo, samplingStep, samplingSteps, elapsedSeconds } = state;
  if (jobCount === 0) return { progress: 0, etaRelative: 0 };
  let progress = 0.01;
  if (jobCount > 0) progress += jobNo / jobCount;
  if (samplingSteps > 0) progress += ((1 / jobCount) * samplingStep) / samplingSteps;
  const eta = elapsedSeconds / progress;
  return { progress: Math.min(progress, 1), etaRelative: eta - elapsedSeconds };
}

/** `20261128093015`: the webui's `job_timestamp`, local time to the second. */
export function jobTimestamp(ms: number): string {
  const date = new Date(ms);
  const two = (value: number): string => String(value).padStart(2, '0');
  return `${String(date.getFullYear())}${two(date.getMonth() + 1)}${two(date.getDate())}${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}
