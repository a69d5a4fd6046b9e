/**
 * Renders a value for the "got …" half of a `TypeError` message, so every error
 * the library throws for bad input reads the same way: ``got `42` (number)``.
 *
 * @internal
 */
export function describeValue(value: unknown): string {
  if (value === null) return '`null`';
  switch (typeof value) {
    case 'undefined':
      return '`undefined`';
    case 'string':
      return `\`${JSON.stringify(value)}\` (string)`;
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'symbol':
      return `\`${String(value)}\` (${typeof value})`;
    case 'function':
      return `a function${value.name === '' ? '' : ` \`${value.name}\``}`;
    default: {
      if (Array.isArray(value)) return 'an array';
      if (Object.getPrototypeOf(value) === null) return 'an object with a null prototype';
      const name = (value.constructor as { name?: unknown } | undefined)?.name;
      return typeof name === 'string' && name !== 'Object' && name !== '' ? `an instance of \`${name}\`` : 'an object';
    }
  }
}
