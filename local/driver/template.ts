/**
 * Template resolution for the local CloudFormation driver: intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
 * Fn::Split, Fn::Select, Fn::If, Fn::ImportValue and the condition functions), pseudo parameters, template parameters
 * (an `AWS::SSM::Parameter::Value<...>` type read from Parameter Store), `{{resolve:ssm:NAME[:VERSION]}}` dynamic
 * references, conditions, the dependency order of resources, the outputs and the exports and imports, against the
 * stack's deployed resources.
 */
import { Ssm } from '../emulator';
import { ExportRegistry, StackExport } from './exports';
import { Json, StackFailure, StackState, isCustom } from './types';

const PSEUDO = (stackName: string, stackId: string, region: string, account: string): Record<string, string> => ({
  'AWS::Region': region, 'AWS::AccountId': account, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': stackName, 'AWS::StackId': stackId, 'AWS::NotificationARNs': '',
});

const NO_VALUE = Symbol('AWS::NoValue');
const SSM_PARAMETER_TYPE = /^AWS::SSM::Parameter::Value<(.+)>$/;
const SSM_DYNAMIC_REFERENCE = /\{\{resolve:ssm:([a-zA-Z0-9_.\-/]+(?::\d+)?)\}\}/g;

export class TemplateResolver {
  constructor(
    private readonly stack: StackState,
    private readonly where: { readonly region: string; readonly account: string; readonly ssm: Ssm },
    private readonly problems: string[],
    private readonly exportRegistry: ExportRegistry,
  ) {}

  /**
   * The template parameters' values for an operation, as CloudFormation takes them when it starts one: the default,
   * and for an `AWS::SSM::Parameter::Value<...>` type the Parameter Store value named by it (read now, so every
   * deploy takes the current value). A missing SSM parameter fails the operation in CloudFormation's words.
   */
  parameterValues(template: Json): Record<string, Json> {
    const values: Record<string, Json> = {};
    const missing: string[] = [];
    for (const [name, parameter] of Object.entries<Json>(template.Parameters ?? {})) {
      const given = parameter.Default ?? '';
      const ssmType = SSM_PARAMETER_TYPE.exec(parameter.Type ?? '');
      if (!ssmType) {
        values[name] = given;
        continue;
      }
      const value = this.where.ssm.value(String(given));
      if (value === undefined) missing.push(String(given));
      values[name] = ssmType[1].startsWith('List<') ? value?.split(',') : value;
    }
    if (missing.length) throw new StackFailure(`Unable to fetch parameters [${missing.join(',')}] from parameter store for this account.`);
    return values;
  }

  /**
   * Replaces every `{{resolve:ssm:NAME[:VERSION]}}` in the strings of resolved `value` with the parameter's value, as
   * CloudFormation does when it provisions a resource (and only then: a changed value alone does not update it).
   */
  dereference(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.dereference(v));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.dereference(v)]));
    if (typeof value !== 'string' || !value.includes('{{resolve:ssm:')) return value;
    return value.replace(SSM_DYNAMIC_REFERENCE, (_whole, selector: string) => {
      const found = this.where.ssm.value(selector);
      if (found === undefined) throw new StackFailure(`Parameters: [ssm:${selector}] cannot be found.`);
      return found;
    });
  }

  /** The exports of the template's outputs (whose Condition holds), resolved. */
  exports(template: Json): StackExport[] {
    return Object.entries<Json>(template?.Outputs ?? {})
      .filter(([, output]) => output.Export && (!output.Condition || this.condition(output.Condition)))
      .map(([outputKey, output]) => ({
        name: String(this.resolve(output.Export.Name)), value: String(this.resolve(output.Value)),
        outputKey, stackId: this.stack.id, stackName: this.stack.name,
      }));
  }

  /** The export names the template imports (Fn::ImportValue) in its resources and outputs that are in use. */
  imports(template: Json): string[] {
    const names = new Set<string>();
    const walk = (value: Json) => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === 'object') {
        if ('Fn::ImportValue' in value) names.add(String(this.resolve(value['Fn::ImportValue'])));
        Object.values(value).forEach(walk);
      }
    };
    const inUse = (entry: Json) => !entry.Condition || this.condition(entry.Condition);
    Object.values<Json>(template.Resources ?? {}).filter(inUse).forEach(walk);
    Object.values<Json>(template.Outputs ?? {}).filter(inUse).forEach(walk);
    return [...names].sort();
  }

  /** The resources `id` references or depends on. */
  dependencies(template: Json, id: string): string[] {
    const resources = template.Resources ?? {};
    const out = new Set<string>();
    const walk = (value: Json) => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === 'object') {
        if (typeof value.Ref === 'string' && resources[value.Ref]) out.add(value.Ref);
        if (value['Fn::GetAtt']) out.add([value['Fn::GetAtt']].flat()[0].split('.')[0]);
        if (typeof value['Fn::Sub'] !== 'undefined') {
          const text = [value['Fn::Sub']].flat()[0] as string;
          for (const m of text.matchAll(/\$\{([^}.!]+)/g)) if (resources[m[1]]) out.add(m[1]);
        }
        Object.values(value).forEach(walk);
      }
    };
    walk(resources[id]);
    for (const d of [resources[id].DependsOn ?? []].flat()) out.add(d);
    return [...out].filter((d) => resources[d]);
  }

  /** Creation order: every resource after those it references or depends on; skipped when its Condition is false. */
  order(template: Json): string[] {
    const resources = template.Resources ?? {};
    const sorted: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (id: string) => {
      if (state.get(id) === 'done') return;
      if (state.get(id) === 'visiting') throw new Error(`circular dependency at ${id}`);
      state.set(id, 'visiting');
      this.dependencies(template, id).forEach(visit);
      state.set(id, 'done');
      const condition = resources[id].Condition;
      if (!condition || this.condition(condition)) sorted.push(id);
    };
    Object.keys(resources).forEach(visit);
    return sorted;
  }

  /** The creation order cut into levels: each level depends only on the levels before it. */
  levels(template: Json): string[][] {
    const order = this.order(template);
    const level = new Map<string, number>();
    for (const id of order) {
      const deps = this.dependencies(template, id).filter((d) => level.has(d));
      level.set(id, deps.length ? Math.max(...deps.map((d) => level.get(d)!)) + 1 : 0);
    }
    const levels: string[][] = [];
    for (const id of order) (levels[level.get(id)!] ??= []).push(id);
    return levels;
  }

  condition(name: string): boolean {
    return Boolean(this.resolve(this.stack.template.Conditions?.[name]));
  }

  /** Resolves intrinsic functions against the deployed resources and pseudo parameters. */
  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v)).filter((v) => v !== NO_VALUE);
    if (!value || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::') || keys[0] === 'Condition')) {
      return this.intrinsic(keys[0], value[keys[0]]);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]).filter(([, v]) => v !== NO_VALUE));
  }

  /** The outputs whose Condition holds, resolved. */
  outputs(template: Json): Record<string, string> {
    const outputs: Record<string, string> = {};
    for (const [name, output] of Object.entries<Json>(template?.Outputs ?? {})) {
      if (output.Condition && !this.condition(output.Condition)) continue;
      outputs[name] = String(this.resolve(output.Value));
    }
    return outputs;
  }

  private ref(name: string): Json {
    if (name === 'AWS::NoValue') return NO_VALUE;
    const pseudo = PSEUDO(this.stack.name, this.stack.id, this.where.region, this.where.account);
    if (name in pseudo) return pseudo[name];
    const parameter = this.stack.template.Parameters?.[name];
    if (parameter) return name in this.stack.parameters ? this.stack.parameters[name] : parameter.Default ?? '';
    const resource = this.stack.resources.get(name);
    if (!resource) throw new StackFailure(`Ref to ${name}, which is not deployed`);
    return resource.physicalId;
  }

  private getAtt(id: string, attribute: string): Json {
    const resource = this.stack.resources.get(id);
    if (!resource) throw new StackFailure(`Fn::GetAtt on ${id}, which is not deployed`);
    if (!(attribute in resource.attributes) && resource.standIn) return `${resource.physicalId}-${attribute}`;
    if (!(attribute in resource.attributes)) {
      const message = `the template reads attribute ${attribute} of ${id}, which ${isCustom(resource.type) ? "its response's Data" : 'the resource'} lacks`;
      this.problems.push(message);
      throw new StackFailure(message);
    }
    return resource.attributes[attribute];
  }

  private intrinsic(fn: string, arg: Json): Json {
    switch (fn) {
      case 'Ref': return this.ref(arg);
      case 'Condition': return this.condition(arg);
      case 'Fn::GetAtt': {
        const [id, ...rest] = Array.isArray(arg) ? arg : String(arg).split('.');
        return this.getAtt(id, rest.join('.'));
      }
      case 'Fn::Join': {
        const [delimiter, list] = arg;
        return (this.resolve(list) as Json[]).join(delimiter);
      }
      case 'Fn::Split': {
        const [delimiter, source] = arg;
        return String(this.resolve(source)).split(delimiter);
      }
      case 'Fn::Select': {
        const [index, list] = this.resolve(arg);
        return list[Number(index)];
      }
      case 'Fn::Sub': {
        const [text, vars] = Array.isArray(arg) ? [arg[0], this.resolve(arg[1] ?? {})] : [arg, {}];
        return (text as string).replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
          if (name.startsWith('!')) return whole.replace('!', '');
          if (name in vars) return vars[name];
          return name.includes('.') ? this.getAtt(name.split('.')[0], name.split('.').slice(1).join('.')) : this.ref(name);
        });
      }
      case 'Fn::If': {
        const [name, yes, no] = arg;
        return this.resolve(this.condition(name) ? yes : no);
      }
      case 'Fn::Equals': {
        const [a, b] = this.resolve(arg);
        return JSON.stringify(a) === JSON.stringify(b);
      }
      case 'Fn::Not': return !this.resolve(arg)[0];
      case 'Fn::And': return this.resolve(arg).every(Boolean);
      case 'Fn::Or': return this.resolve(arg).some(Boolean);
      case 'Fn::Base64': return Buffer.from(String(this.resolve(arg))).toString('base64');
      case 'Fn::GetAZs': return ['a', 'b', 'c'].map((z) => `${this.where.region}${z}`);
      case 'Fn::ImportValue': {
        const name = String(this.resolve(arg));
        const value = this.exportRegistry.value(name);
        if (value === undefined) throw new StackFailure(`No export named ${name} found`);
        return value;
      }
      default: throw new StackFailure(`unsupported intrinsic function ${fn}`);
    }
  }
}
