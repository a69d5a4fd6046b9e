import type { RunInput } from './api.js';
import { LIMITS, RANDOM_SEED, SAMPLER_NAMES, SCHEDULER_LABELS, SIZE_PRESETS } from './bounds.js';
import { byId, h } from './dom.js';

type FieldName = 'prompt' | 'negative_prompt' | 'seed' | 'steps' | 'width' | 'height';

/** A form value the API would refuse, with what to say next to the field. */
interface FieldProblem {
  readonly field: FieldName;
  readonly message: string;
}

/** Settings to put back into the form ("use these settings"). */
export interface FormSettings {
  readonly prompt: string;
  readonly negative_prompt?: string | undefined;
  readonly seed?: number | undefined;
  readonly steps?: number | undefined;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  readonly sampler?: string | undefined;
  readonly scheduler?: string | undefined;
}

const CUSTOM = 'custom';

/** Where the form's last settings are kept, in this browser, across reloads. */
const FORM_STORAGE = 'processing-runner.form';

/** What the form holds, as kept in local storage. */
interface StoredForm {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly seed: string;
  readonly randomSeed: boolean;
  readonly steps: string;
  readonly width: string;
  readonly height: string;
}

/** The "New run" form: reads and checks the fields, shows problems next to them. */
export class RunForm {
  readonly form = byId('run-form', HTMLFormElement);
  readonly #prompt = byId('prompt', HTMLTextAreaElement);
  readonly #negative = byId('negative_prompt', HTMLTextAreaElement);
  readonly #seed = byId('seed', HTMLInputElement);
  readonly #seedRandom = byId('seed-random', HTMLInputElement);
  readonly #steps = byId('steps', HTMLInputElement);
  readonly #preset = byId('size-preset', HTMLSelectElement);
  readonly #sampler = byId('sampler', HTMLSelectElement);
  readonly #scheduler = byId('scheduler', HTMLSelectElement);
  readonly #width = byId('width', HTMLInputElement);
  readonly #height = byId('height', HTMLInputElement);
  readonly #formError = byId('form-error', HTMLParagraphElement);
  readonly #note = byId('form-note', HTMLParagraphElement);
  readonly #submit = byId('generate', HTMLButtonElement);
  readonly #reset = byId('reset-form', HTMLButtonElement);
  /** The fields as the page first had them: what Reset goes back to. */
  readonly #defaults: StoredForm;

  constructor() {
    // The number inputs carry the same bounds, so spin buttons and arrow keys stay inside them.
    setRange(this.#seed, LIMITS.seed.min, LIMITS.seed.max, 1);
    setRange(this.#steps, LIMITS.steps.min, LIMITS.steps.max, 1);
    for (const input of [this.#width, this.#height]) setRange(input, LIMITS.size.min, LIMITS.size.max, LIMITS.size.multipleOf);
    this.#prompt.maxLength = LIMITS.promptLength;
    this.#negative.maxLength = LIMITS.promptLength;
    for (const [width, height] of SIZE_PRESETS) {
      this.#preset.append(h('option', { value: `${String(width)}x${String(height)}` }, `${String(width)} × ${String(height)}`));
    }
    this.#preset.append(h('option', { value: CUSTOM }, 'Custom'));
    for (const name of SAMPLER_NAMES) this.#sampler.append(h('option', { value: name }, name));
    for (const label of SCHEDULER_LABELS) this.#scheduler.append(h('option', { value: label }, label));
    this.#applyPreset('512x512');
    this.#preset.addEventListener('change', () => {
      this.#applyPreset(this.#preset.value);
    });
    for (const input of [this.#width, this.#height]) {
      input.addEventListener('input', () => {
        this.#syncPreset();
      });
    }
    this.#seedRandom.addEventListener('change', () => {
      this.#seed.disabled = this.#seedRandom.checked;
    });
    this.#defaults = this.#current();
    this.#restore();
    // Every change is kept at once, so a reload (or a closed tab) loses nothing typed.
    this.form.addEventListener('input', () => {
      this.#save();
    });
    this.form.addEventListener('change', () => {
      this.#save();
    });
    this.#reset.addEventListener('click', () => {
      this.#apply(this.#defaults);
      localStorage.removeItem(FORM_STORAGE);
      this.clearErrors();
      this.announce('');
      this.#prompt.focus();
    });
  }

  /** Says, under the button, what the last Generate did (an empty text hides it). */
  announce(text: string): void {
    this.#note.textContent = text;
    this.#note.hidden = text === '';
  }

  #current(): StoredForm {
    return {
      prompt: this.#prompt.value,
      negative_prompt: this.#negative.value,
      seed: this.#seed.value,
      randomSeed: this.#seedRandom.checked,
      steps: this.#steps.value,
      width: this.#width.value,
      height: this.#height.value,
    };
  }

  #apply(values: StoredForm): void {
    this.#prompt.value = values.prompt;
    this.#negative.value = values.negative_prompt;
    this.#seed.value = values.seed;
    this.#seedRandom.checked = values.randomSeed;
    this.#seed.disabled = values.randomSeed;
    this.#steps.value = values.steps;
    this.#width.value = values.width;
    this.#height.value = values.height;
    this.#syncPreset();
  }

  #save(): void {
    try {
      localStorage.setItem(FORM_STORAGE, JSON.stringify(this.#current()));
    } catch {
      // Storage full or refused (a private window): the form works, it only forgets on reload.
    }
  }

  /** Puts back what the form last held in this browser; anything unreadable is ignored. */
  #restore(): void {
    let stored: unknown;
    try {
      stored = JSON.parse(localStorage.getItem(FORM_STORAGE) ?? 'null');
    } catch {
      return;
    }
    if (typeof stored !== 'object' || stored === null) return;
    const read = (key: keyof StoredForm): string | undefined => {
      const value = (stored as Record<string, unknown>)[key];
      return typeof value === 'string' ? value : undefined;
    };
    const randomSeed = (stored as Record<string, unknown>).randomSeed;
    this.#apply({
      prompt: read('prompt') ?? this.#defaults.prompt,
      negative_prompt: read('negative_prompt') ?? this.#defaults.negative_prompt,
      seed: read('seed') ?? this.#defaults.seed,
      randomSeed: typeof randomSeed === 'boolean' ? randomSeed : this.#defaults.randomSeed,
      steps: read('steps') ?? this.#defaults.steps,
      width: read('width') ?? this.#defaults.width,
      height: read('height') ?? this.#defaults.height,
    });
  }

  /** Checks every field; shows each problem beside its field and returns null, or the body. */
  read(): RunInput | null {
    this.clearErrors();
    const problems: FieldProblem[] = [];
    const prompt = this.#prompt.value.trim();
    if (prompt.length === 0) problems.push({ field: 'prompt', message: 'Write a prompt.' });
    const negative = this.#negative.value.trim();
    const seed = this.#seedRandom.checked ? RANDOM_SEED : integerIn(this.#seed, 'seed', LIMITS.seed.min, LIMITS.seed.max, 1, problems);
    const steps = integerIn(this.#steps, 'steps', LIMITS.steps.min, LIMITS.steps.max, 1, problems);
    const { min, max, multipleOf } = LIMITS.size;
    const width = integerIn(this.#width, 'width', min, max, multipleOf, problems);
    const height = integerIn(this.#height, 'height', min, max, multipleOf, problems);
    if (problems.length > 0) {
      for (const problem of problems) this.#showFieldError(problem);
      this.#fieldInput(problems[0]?.field ?? 'prompt').focus();
      return null;
    }
    return {
      prompt,
      ...(negative === '' ? {} : { negative_prompt: negative }),
      seed: seed ?? RANDOM_SEED,
      ...(steps === null ? {} : { steps }),
      ...(width === null ? {} : { width }),
      ...(height === null ? {} : { height }),
      sampler: this.#sampler.value,
      scheduler: this.#scheduler.value,
    };
  }

  /** Shows a message the server sent for the whole request (a `400`/`422`, a full queue). */
  showServerError(message: string): void {
    this.#formError.textContent = message;
    this.#formError.hidden = false;
  }

  clearErrors(): void {
    this.#formError.hidden = true;
    this.#formError.textContent = '';
    for (const name of ['prompt', 'negative_prompt', 'seed', 'steps', 'width', 'height'] as const) {
      const input = this.#fieldInput(name);
      input.removeAttribute('aria-invalid');
      const error = byId(`${name}-error`, HTMLParagraphElement);
      error.hidden = true;
      error.textContent = '';
    }
  }

  set busy(busy: boolean) {
    this.#submit.disabled = busy;
    this.#submit.textContent = busy ? 'Queuing…' : 'Generate';
  }

  /** Puts a finished run's settings back into the form and moves focus to the prompt. */
  fill(settings: FormSettings): void {
    this.#prompt.value = settings.prompt;
    this.#negative.value = settings.negative_prompt ?? '';
    if (settings.seed !== undefined) {
      this.#seedRandom.checked = false;
      this.#seed.disabled = false;
      this.#seed.value = String(settings.seed);
    }
    if (settings.steps !== undefined) this.#steps.value = String(settings.steps);
    if (settings.width !== undefined) this.#width.value = String(settings.width);
    if (settings.height !== undefined) this.#height.value = String(settings.height);
    // A name the list lacks (a run from another server) leaves the select as it is.
    if (settings.sampler !== undefined && SAMPLER_NAMES.includes(settings.sampler)) this.#sampler.value = settings.sampler;
    if (settings.scheduler !== undefined && SCHEDULER_LABELS.includes(settings.scheduler)) this.#scheduler.value = settings.scheduler;
    this.#syncPreset();
    this.#save();
    this.clearErrors();
    this.#prompt.focus();
  }

  #applyPreset(value: string): void {
    const match = /^(\d+)x(\d+)$/.exec(value);
    if (match === null) return;
    this.#preset.value = value;
    this.#width.value = match[1] ?? '';
    this.#height.value = match[2] ?? '';
  }

  #syncPreset(): void {
    const value = `${this.#width.value}x${this.#height.value}`;
    this.#preset.value = [...this.#preset.options].some((option) => option.value === value) ? value : CUSTOM;
  }

  #fieldInput(name: FieldName): HTMLInputElement | HTMLTextAreaElement {
    return name === 'prompt' ? this.#prompt : name === 'negative_prompt' ? this.#negative : byId(name, HTMLInputElement);
  }

  #showFieldError({ field, message }: FieldProblem): void {
    this.#fieldInput(field).setAttribute('aria-invalid', 'true');
    const error = byId(`${field}-error`, HTMLParagraphElement);
    error.textContent = message;
    error.hidden = false;
  }
}

function setRange(input: HTMLInputElement, min: number, max: number, step: number): void {
  input.min = String(min);
  input.max = String(max);
  input.step = String(step);
}

/** The field's integer, null when left empty (the server's default), or a problem noted. */
function integerIn(input: HTMLInputElement, field: FieldName, min: number, max: number, multipleOf: number, problems: FieldProblem[]): number | null {
  const text = input.value.trim();
  if (text === '') return null;
  const value = Number(text);
  const kind = multipleOf === 1 ? 'a whole number' : `a multiple of ${String(multipleOf)}`;
  if (!Number.isInteger(value) || value < min || value > max || value % multipleOf !== 0) {
    problems.push({ field, message: `Must be ${kind} from ${String(min)} to ${String(max)}.` });
    return null;
  }
  return value;
}
