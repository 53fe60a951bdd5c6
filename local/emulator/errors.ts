/** An AWS error as the JSON 1.1 protocol carries it: `{"__type", "message", ...}` with AWS's status code. */
export class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    return { __type: this.type, message: this.message, ...this.extra };
  }
}

/** One constraint of a request member, checked as the service's model does. */
export interface Constraint {
  readonly required?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** Bounds of a string's size in bytes when encoded in UTF-8 (as opposed to `min`/`max`, which count characters). */
  readonly minBytes?: number;
  readonly maxBytes?: number;
  readonly pattern?: RegExp;
  /** Never echo the value in an error (sensitive members such as SecretString). */
  readonly sensitive?: boolean;
  readonly type?: 'string' | 'number' | 'boolean' | 'list' | 'object';
}

/**
 * Checks `input` against `shape` and throws AWS's ValidationException listing every violation, in the
 * wording AWS's front end uses ("1 validation error detected: Value ... at 'member' failed to satisfy
 * constraint: ...").
 */
export function validate(input: Record<string, unknown>, shape: Record<string, Constraint>): void {
  const errors: string[] = [];
  for (const [member, c] of Object.entries(shape)) {
    const value = input[member];
    const at = member.charAt(0).toLowerCase() + member.slice(1);
    const shown = c.sensitive ? '' : ` '${typeof value === 'string' ? value : JSON.stringify(value)}'`;
    if (value === undefined || value === null) {
      if (c.required) errors.push(`Value null at '${at}' failed to satisfy constraint: Member must not be null`);
      continue;
    }
    const type = c.type ?? 'string';
    const actual = Array.isArray(value) ? 'list' : typeof value === 'object' ? 'object' : typeof value;
    if (actual !== type) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must be of type ${type}`);
      continue;
    }
    // A string's length counts Unicode code points, as the services' models do (not UTF-16 units, not bytes).
    const size = type === 'string' ? [...(value as string)].length : type === 'list' ? (value as unknown[]).length : undefined;
    if (type === 'number' && c.min !== undefined && (value as number) < c.min) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have value greater than or equal to ${c.min}`);
    }
    if (type === 'number' && c.max !== undefined && (value as number) > c.max) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have value less than or equal to ${c.max}`);
    }
    if (size !== undefined && c.min !== undefined && size < c.min) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have length greater than or equal to ${c.min}`);
    }
    if (size !== undefined && c.max !== undefined && size > c.max) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have length less than or equal to ${c.max}`);
    }
    const bytes = type === 'string' ? Buffer.byteLength(value as string, 'utf8') : undefined;
    if (bytes !== undefined && c.minBytes !== undefined && bytes < c.minBytes) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have UTF-8 encoded length greater than or equal to ${c.minBytes} bytes`);
    }
    if (bytes !== undefined && c.maxBytes !== undefined && bytes > c.maxBytes) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must have UTF-8 encoded length less than or equal to ${c.maxBytes} bytes`);
    }
    if (type === 'string' && c.pattern && !c.pattern.test(value as string)) {
      errors.push(`Value${shown} at '${at}' failed to satisfy constraint: Member must satisfy regular expression pattern: ${c.pattern.source}`);
    }
  }
  if (errors.length) {
    throw new AwsError('ValidationException', `${errors.length} validation error${errors.length > 1 ? 's' : ''} detected: ${errors.join('; ')}`);
  }
}
