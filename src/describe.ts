/**
 * Renders a value for the "got …" half of a `TypeError` message, so every error
 * the library throws for bad input reads the same way: ``got `42` (number)``.
 *
 * @internal
 */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return `\`${String(value)}\``;
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (typeof value === 'function') return `a function${value.name === '' ? '' : ` \`${value.name}\``}`;
  if (typeof value !== 'object') {
    const primitive = value as number | bigint | boolean | symbol;
    return `\`${String(primitive)}\` (${typeof primitive})`;
  }
  if (Array.isArray(value)) return 'an array';
  if (Object.getPrototypeOf(value) === null) return 'an object with a null prototype';
  const name = (value.constructor as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && name !== 'Object' && name !== '' ? `an instance of \`${name}\`` : 'an object';
}
