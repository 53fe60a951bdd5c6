/**
 * The jsii assembly: which jsii compiled it, what Python, Java, .NET and Go see, how lib/*.js is tagged for them, what
 * stays TypeScript only (as the README says), and API.md generated from it. Run after `npm run build`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ts from 'typescript';
import { ChapCredentials, ChapCredentialsAttribute } from '../lib';
import { Attr, RESOURCE_TYPE, initiatorSecretNamePart } from '../lib/api';
import { DOC_TARGET_ARN } from './fixtures';
import { ROOT, readAssembly, readPackageJson, readmeSection, runTool, tempDir } from './jsii-tools';

const assembly = readAssembly();
const pkg = readPackageJson();
const HOST = 'iqn.1994-05.com.redhat:db-host';

interface JsiiMember { readonly name: string; readonly static?: boolean; readonly const?: boolean }
interface JsiiType { readonly fqn: string; readonly name: string; readonly kind: string; readonly datatype?: boolean;
  readonly initializer?: object; readonly properties?: JsiiMember[]; readonly methods?: JsiiMember[] }
const types = Object.values<JsiiType>(assembly.types);
const typeNamed = (name: string) => types.find((t) => t.name === name);

test('jsii of the 6.0 line compiled the assembly; jsii lists 6.0 as current and 5.9 as supported until 2027-01-01', () => {
  // Why 6.0 (README, Development): the 5.9 line's support ends on 2027-01-01.
  const releases = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'jsii', 'releases.json'), 'utf8'));
  expect(releases.current).toBe('6.0');
  expect(releases.maintenance['5.9']).toMatch(/^2027-01-01/);
  expect(releases.maintenance['6.0']).toBeUndefined();
  expect(assembly.jsiiVersion).toMatch(/^6\.0\.\d+ /);
  expect(pkg.devDependencies.jsii).toMatch(/^6\.0\./);
  expect({ name: assembly.name, version: assembly.version, license: assembly.license })
    .toEqual({ name: pkg.name, version: pkg.version, license: 'Apache-2.0' });
});

test('the assembly targets Python, Java, .NET and Go with the package names the README installs', () => {
  const targets = {
    python: { distName: 'cdk-chap-credentials', module: 'cdk_chap_credentials' },
    java: {
      package: 'io.github.cdkchapcredentials.chapcredentials',
      maven: { groupId: 'io.github.cdkchapcredentials', artifactId: 'cdk-chap-credentials' },
    },
    dotnet: { namespace: 'CdkChapCredentials', packageId: 'CdkChapCredentials' },
    go: { moduleName: 'github.com/cdk-chap-credentials/cdk-chap-credentials-go', packageName: 'cdkchapcredentials' },
  };
  expect(pkg.jsii.targets).toEqual(targets);
  expect(assembly.targets).toEqual({ js: { npm: pkg.name }, ...targets });

  const install = readmeSection('Install');
  const { python, java, dotnet, go } = targets;
  const goImport = `${go.moduleName}/${go.packageName}`;
  for (const expected of [
    `npm install ${pkg.name}`, `yarn add ${pkg.name}`,
    `pip install ${python.distName}`, `module \`${python.module}\``,
    `<groupId>${java.maven.groupId}</groupId>`, `<artifactId>${java.maven.artifactId}</artifactId>`, `<version>${pkg.version}</version>`,
    `package \`${java.package}\``,
    `dotnet add package ${dotnet.packageId}`, `namespace \`${dotnet.namespace}\``,
    `go get ${goImport}`, `package \`${go.packageName}\``,
  ]) {
    expect(install).toContain(expected);
  }
});

test('what other languages see: the construct, its structs, the provider, and the shared names as static members', () => {
  const surface = Object.fromEntries(types.map((t) => [t.name, {
    kind: t.datatype ? 'struct' : t.kind,
    initializer: t.initializer !== undefined,
    statics: [...(t.properties ?? []), ...(t.methods ?? [])].filter((m) => m.static).map((m) => m.name).sort(),
  }]));
  expect(surface).toEqual({
    ChapCredentials: { kind: 'class', initializer: true, statics: ['RESOURCE_TYPE', 'initiatorSecretNamePart'] },
    ChapCredentialsAttribute: {
      kind: 'class', initializer: false, statics: ['INITIATOR_COUNT', 'INITIATOR_NAMES', 'INITIATOR_NAMES_TRUNCATED'],
    },
    ChapCredentialsProps: { kind: 'struct', initializer: false, statics: [] },
    ChapCredentialsProvider: { kind: 'class', initializer: false, statics: ['getOrCreate'] },
    ChapMode: { kind: 'enum', initializer: false, statics: [] },
    ChapRotation: { kind: 'class', initializer: false, statics: ['every', 'expression'] },
    IscsiHostProps: { kind: 'struct', initializer: false, statics: [] },
    IscsiHostWiring: { kind: 'struct', initializer: false, statics: [] },
    ProviderRegistration: { kind: 'struct', initializer: false, statics: [] },
  });
  for (const t of types) expect(t.fqn).toBe(`${pkg.name}.${t.name}`);
});

test("lib/*.js is jsii's output: each class other languages see carries jsii's type tag with its fqn", () => {
  // A child process loads the compiled package as a consumer does (jest would load the .ts sources instead).
  const script = `
    const lib = require(${JSON.stringify(ROOT)});
    const tags = {};
    for (const [name, value] of Object.entries(lib)) {
      if (typeof value === 'function' && value.prototype) tags[name] = value[Symbol.for('jsii.rtti')] ?? null;
    }
    process.stdout.write(JSON.stringify(tags));
  `;
  const tags = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' }));
  const classes = types.filter((t) => t.kind === 'class');
  expect(classes.map((t) => t.name).sort()).toEqual(['ChapCredentials', 'ChapCredentialsAttribute', 'ChapCredentialsProvider', 'ChapRotation']);
  for (const t of classes) {
    expect([t.name, tags[t.name]]).toEqual([t.name, { fqn: t.fqn, version: pkg.version }]);
  }
});

test('the static members hold the names the construct writes into the template', () => {
  expect(ChapCredentials.RESOURCE_TYPE).toBe(RESOURCE_TYPE);
  expect([ChapCredentialsAttribute.INITIATOR_NAMES, ChapCredentialsAttribute.INITIATOR_COUNT, ChapCredentialsAttribute.INITIATOR_NAMES_TRUNCATED])
    .toEqual([Attr.InitiatorNames, Attr.InitiatorCount, Attr.InitiatorNamesTruncated]);
  expect(ChapCredentials.initiatorSecretNamePart(HOST)).toBe('iqn.1994-05.com.redhat_db-host');
  expect(ChapCredentials.initiatorSecretNamePart(HOST)).toBe(initiatorSecretNamePart(HOST));

  const stack = new Stack(new App(), 'Names');
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST], secretName: 'iscsi' });
  const template = Template.fromStack(stack);
  template.resourceCountIs(ChapCredentials.RESOURCE_TYPE, 1);
  template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: `iscsi/${ChapCredentials.initiatorSecretNamePart(HOST)}` });
  const logicalId = stack.getLogicalId(chap.resource.node.defaultChild as never);
  expect(stack.resolve(chap.initiatorNamesCommaSeparated)).toEqual({ 'Fn::GetAtt': [logicalId, ChapCredentialsAttribute.INITIATOR_NAMES] });
  expect(stack.resolve(chap.initiatorCount)).toEqual({ 'Fn::GetAtt': [logicalId, ChapCredentialsAttribute.INITIATOR_COUNT] });
  expect(stack.resolve(chap.initiatorNamesTruncated)).toEqual({ 'Fn::GetAtt': [logicalId, ChapCredentialsAttribute.INITIATOR_NAMES_TRUNCATED] });
});

test("the README's TypeScript-only table lists exactly what the package exports that the assembly does not", () => {
  // Every name the package's declarations (jsii's lib/index.d.ts) export, for TypeScript. Only our own files are read:
  // the names do not depend on aws-cdk-lib's declarations, which would take seconds to load.
  const options: ts.CompilerOptions = { noLib: true, types: [] };
  const host = ts.createCompilerHost(options);
  host.resolveModuleNames = (names, containingFile) => names.map((name) => (name.startsWith('.')
    ? { resolvedFileName: path.resolve(path.dirname(containingFile), `${name}.d.ts`), extension: ts.Extension.Dts }
    : undefined));
  const program = ts.createProgram([path.join(ROOT, 'lib', 'index.d.ts')], options, host);
  expect(program.getSourceFiles().map((f) => path.relative(ROOT, f.fileName)).sort())
    .toEqual(fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.d.ts')).map((f) => path.join('lib', f)).sort());
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(path.join(ROOT, 'lib', 'index.d.ts'))!)!;
  const exported = checker.getExportsOfModule(moduleSymbol).map((s) => s.name);
  const typeScriptOnly = exported.filter((name) => !typeNamed(name)).sort();
  expect(typeScriptOnly.length).toBeGreaterThan(0);
  expect(exported).toEqual(expect.arrayContaining(types.map((t) => t.name))); // TypeScript sees everything else too

  const section = readmeSection('Other languages');
  const rows = section.split('\n').filter((line) => line.startsWith('| `'));
  const listed = rows.flatMap((row) => [...row.split('|')[1].matchAll(/`(\w+)/g)].map((m) => m[1])).sort();
  expect(listed).toEqual(typeScriptOnly);
  // Each stand-in the table names for other languages exists in the assembly.
  const standIns = rows.flatMap((row) => [...row.split('|')[2].matchAll(/`(\w+)(?:\.(\w+))?/g)]);
  expect(standIns.length).toBeGreaterThanOrEqual(5);
  for (const [, typeName, member] of standIns) {
    const type = typeNamed(typeName);
    expect([typeName, type?.fqn]).toEqual([typeName, `${pkg.name}.${typeName}`]);
    if (member) expect([...(type!.properties ?? []), ...(type!.methods ?? [])].map((m) => m.name)).toContain(member);
  }
});

test('API.md is what jsii-docgen makes of the assembly', () => {
  const fresh = path.join(tempDir('chap-docgen-'), 'API.md');
  const run = runTool('jsii-docgen', ['-o', fresh]);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const committed = fs.readFileSync(path.join(ROOT, 'API.md'), 'utf8');
  const generated = fs.readFileSync(fresh, 'utf8');
  expect(generated).toContain('### ChapCredentials ');
  if (committed !== generated) {
    throw new Error("API.md is stale: it differs from what jsii-docgen makes of the assembly. Run 'npm run build && npm run docgen' and commit API.md.");
  }
});
