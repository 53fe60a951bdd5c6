/**
 * Systems Manager Parameter Store, as far as the driver and a stack's parameters use it: String and StringList
 * parameters of the Standard tier (values of 1 to 4096 characters), versions (each PutParameter that overwrites makes
 * the next one, readable as `NAME:VERSION`), PutParameter without Overwrite refused for an existing name.
 *
 * The account is bootstrapped for the CDK: `/cdk-bootstrap/hnb659fds/version` exists, as the default synthesizer's
 * BootstrapVersion template parameter expects.
 */
import { AwsError, Constraint, validate } from './errors';

const NAME: Constraint = { required: true, min: 1, max: 2048, pattern: /^[a-zA-Z0-9_.\-/]+$/ };
/** A name, or NAME:VERSION. */
const SELECTOR: Constraint = { required: true, min: 1, max: 2048, pattern: /^[a-zA-Z0-9_.\-/]+(:\d+)?$/ };
/** Standard tier: up to 4 KB. */
export const SSM_VALUE_MAX_LENGTH = 4096;

export interface ParameterVersion {
  readonly value: string;
  readonly version: number;
  readonly lastModifiedDate: Date;
}

export interface StoredParameter {
  readonly name: string;
  type: string;
  description?: string;
  readonly versions: ParameterVersion[];
}

/** The CDK's default bootstrap stack (qualifier hnb659fds) records its version here. */
export const CDK_BOOTSTRAP_VERSION_PARAMETER = '/cdk-bootstrap/hnb659fds/version';

export class Ssm {
  readonly parameters = new Map<string, StoredParameter>();

  constructor(private readonly region: string, private readonly account: string) {
    this.PutParameter({ Name: CDK_BOOTSTRAP_VERSION_PARAMETER, Value: '30', Type: 'String' });
  }

  /** The value of `NAME` or `NAME:VERSION`, or undefined when there is no such parameter or version. */
  value(selector: string): string | undefined {
    try {
      return this.select(selector).version.value;
    } catch {
      return undefined;
    }
  }

  PutParameter(input: Record<string, unknown>) {
    validate(input, {
      Name: NAME, Value: { required: true, min: 1 }, Type: { pattern: /^(String|StringList|SecureString)$/ },
      Description: { max: 1024 }, Overwrite: { type: 'boolean' }, Tier: { pattern: /^(Standard|Advanced|Intelligent-Tiering)$/ },
    });
    const name = input.Name as string;
    const value = input.Value as string;
    if ((input.Tier ?? 'Standard') === 'Standard' && [...value].length > SSM_VALUE_MAX_LENGTH) {
      throw new AwsError('ValidationException', `Standard tier parameters support a maximum parameter value of ${SSM_VALUE_MAX_LENGTH} characters. `
        + 'To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.');
    }
    const existing = this.parameters.get(name);
    if (existing && input.Overwrite !== true) {
      throw new AwsError('ParameterAlreadyExists', 'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.');
    }
    if (!existing && input.Type === undefined) throw new AwsError('ValidationException', 'A parameter type is required when you create a parameter.');
    const parameter = existing ?? { name, type: input.Type as string, versions: [] };
    if (input.Type !== undefined) parameter.type = input.Type as string;
    if (input.Description !== undefined) parameter.description = input.Description as string;
    const version = parameter.versions.length + 1;
    parameter.versions.push({ value, version, lastModifiedDate: new Date() });
    this.parameters.set(name, parameter);
    return { Version: version, Tier: 'Standard' };
  }

  GetParameter(input: Record<string, unknown>) {
    validate(input, { Name: SELECTOR, WithDecryption: { type: 'boolean' } });
    return { Parameter: this.describe(input.Name as string) };
  }

  GetParameters(input: Record<string, unknown>) {
    validate(input, { Names: { required: true, type: 'list', min: 1, max: 10 } });
    const names = input.Names as string[];
    const found = names.filter((n) => this.value(n) !== undefined);
    return { Parameters: found.map((n) => this.describe(n)), InvalidParameters: names.filter((n) => !found.includes(n)) };
  }

  DeleteParameter(input: Record<string, unknown>) {
    validate(input, { Name: NAME });
    if (!this.parameters.delete(input.Name as string)) throw new AwsError('ParameterNotFound', '');
    return {};
  }

  private select(selector: string): { parameter: StoredParameter; version: ParameterVersion } {
    const [, name, wanted] = /^(.*?)(?::(\d+))?$/.exec(selector)!;
    const parameter = this.parameters.get(name);
    const version = wanted === undefined ? parameter?.versions.at(-1) : parameter?.versions.find((v) => v.version === Number(wanted));
    if (!parameter || !version) throw new AwsError(parameter ? 'ParameterVersionNotFound' : 'ParameterNotFound', '');
    return { parameter, version };
  }

  private describe(selector: string) {
    const { parameter, version } = this.select(selector);
    return {
      Name: parameter.name, Type: parameter.type, Value: version.value, Version: version.version,
      LastModifiedDate: version.lastModifiedDate.getTime() / 1000, DataType: 'text',
      ARN: `arn:aws:ssm:${this.region}:${this.account}:parameter${parameter.name.startsWith('/') ? '' : '/'}${parameter.name}`,
      ...(selector !== parameter.name ? { Selector: selector.slice(parameter.name.length) } : {}),
    };
  }
}
