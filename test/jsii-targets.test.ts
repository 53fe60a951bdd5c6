/**
 * The other languages' side: the README's examples compile under jsii-rosetta (strict) and are translated, and
 * jsii-pacmak generates the Python, Java, .NET and Go packages' sources (offline), with the Python byte-compiled.
 * Run after `npm run build`: both tools read the assembly (`.jsii`).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, ToolResult, readAssembly, readPackageJson, readmeSection, runTool, tempDir } from './jsii-tools';

const pkg = readPackageJson();
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

interface Snippet {
  readonly location: { readonly api: { readonly api: string }; readonly field: { readonly line: number } };
  readonly didCompile?: boolean;
  readonly translations: Record<'$' | 'python' | 'java' | 'csharp' | 'go', { readonly source: string }>;
}

let work: string;
let rosetta: ToolResult;
let pacmak: ToolResult;
let snippets: Snippet[];

beforeAll(() => {
  work = tempDir('chap-jsii-targets-');
  const tablet = path.join(work, 'tablet.json');
  // A clean run: rosetta would otherwise reuse the translations it wrote beside the assembly last time.
  fs.rmSync(path.join(ROOT, '.jsii.tabl.json'), { force: true });
  rosetta = runTool('jsii-rosetta', ['extract', '--strict', '--cache-to', tablet, '.jsii']);
  snippets = fs.existsSync(tablet) ? Object.values(JSON.parse(fs.readFileSync(tablet, 'utf8')).snippets) : [];
  // Every README example must come from that tablet (`fail`): the packages' docs show only compiled translations.
  pacmak = runTool('jsii-pacmak', ['--code-only', '--no-npmignore', '--outdir', path.join(work, 'dist'),
    '--rosetta-tablet', tablet, '--rosetta-unknown-snippets', 'fail']);
}, 180_000);

describe('jsii-rosetta', () => {
  test('every TypeScript example of the README compiles in strict mode, inside the fixtures of rosetta/', () => {
    expect(rosetta.stderr).not.toMatch(/error/i);
    expect(rosetta.status).toBe(0);
    const fences = readme.split('\n').filter((line) => /^```(ts|typescript)\b/.test(line));
    const fromReadme = snippets.filter((s) => s.location.api.api === 'moduleReadme');
    expect(fences.length).toBeGreaterThanOrEqual(3);
    expect(fromReadme.map((s) => [s.location.field.line, s.didCompile]))
      .toEqual(fromReadme.map((s) => [s.location.field.line, true]));
    expect(fromReadme).toHaveLength(fences.length);
  });

  test('the Usage example reads as Python, Java, C# and Go', () => {
    const usage = snippets.find((s) => s.translations.$.source.includes("import { ChapCredentials } from 'cdk-chap-credentials'"));
    expect(usage).toBeDefined();
    const { python, java, csharp, go } = usage!.translations;
    expect(python.source).toContain('from cdk_chap_credentials import ChapCredentials');
    expect(python.source).toContain('ChapCredentials(self, "Chap",\n    target_arn="arn:aws:storagegateway:us-east-1:111122223333:gateway/');
    expect(python.source).toContain('chap.grant_read_initiator("iqn.1991-05.com.microsoft:computername.domain.example.com", host_role)');
    expect(java.source).toContain('ChapCredentials.Builder.create(this, "Chap")');
    expect(csharp.source).toContain('new ChapCredentials(this, "Chap", new ChapCredentialsProps {');
    expect(go.source).toContain('cdkchapcredentials.NewChapCredentials(this, jsii.String("Chap"), &ChapCredentialsProps{');
  });

  test('negative control: an example that does not type-check fails strict mode', () => {
    // The same package with one broken example as its README, in a folder of its own (rosetta writes beside the assembly).
    const broken = tempDir('chap-rosetta-broken-');
    const assembly = readAssembly();
    assembly.readme = { markdown: "# Broken\n\n```ts\nnew ChapCredentials(this, 'Chap', { targetArn: 42 });\n```\n" };
    delete assembly.fingerprint;
    fs.writeFileSync(path.join(broken, '.jsii'), JSON.stringify(assembly));
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(broken, 'package.json'));
    for (const link of ['lib', 'rosetta', 'node_modules']) fs.symlinkSync(path.join(ROOT, link), path.join(broken, link));
    const run = runTool('jsii-rosetta', ['extract', '--strict', '--cache-to', path.join(broken, 'tablet.json'), '.jsii'], broken);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/error TS2322: Type 'number' is not assignable to type 'string'/);
  });
});

describe('jsii-pacmak', () => {
  const dist = () => path.join(work, 'dist');
  const read = (...parts: string[]) => fs.readFileSync(path.join(dist(), ...parts), 'utf8');

  test('generates the sources of the Python, Java, .NET and Go packages, under the names package.json gives', () => {
    expect(pacmak.stderr).not.toMatch(/error/i);
    expect(pacmak.status).toBe(0);
    const { python, java, dotnet, go } = pkg.jsii.targets;
    expect(read('python', 'setup.py')).toContain(`"name": "${python.distName}"`);
    expect(read('python', 'src', python.module, '__init__.py')).toMatch(/^class ChapCredentials\(/m);

    const javaDir = path.join('java', 'src', 'main', 'java', ...java.package.split('.'));
    expect(read('java', 'pom.xml')).toContain(`<groupId>${java.maven.groupId}</groupId>\n  <artifactId>${java.maven.artifactId}</artifactId>`);
    expect(read(javaDir, 'ChapCredentials.java')).toContain(`package ${java.package};`);

    expect(read('dotnet', dotnet.packageId, `${dotnet.packageId}.csproj`)).toContain(`<PackageId>${dotnet.packageId}</PackageId>`);
    expect(read('dotnet', dotnet.packageId, dotnet.namespace, 'ChapCredentials.cs')).toContain(`namespace ${dotnet.namespace}`);

    expect(read('go', go.packageName, 'go.mod')).toMatch(new RegExp(`^module ${go.moduleName}/${go.packageName}$`, 'm'));
    expect(read('go', go.packageName, 'ChapCredentials.go')).toMatch(new RegExp(`^package ${go.packageName}$`, 'm'));
  });

  test("the Python package's build and install requirements are the ones the README's Install notes name", () => {
    const install = readmeSection('Install').replace(/\s+/g, ' ');
    // jsii-pacmak's wheel build pins setuptools and build; `npm run package:python` uses the local setuptools instead.
    const [, buildRequires] = read('python', 'pyproject.toml').match(/^requires = \[(.*)\]$/m)!;
    const pins = [...buildRequires.matchAll(/"([\w-]+)~=(\d+\.\d+)\.\d+"/g)].map(([, name, version]) => `\`${name}\` ${version}`);
    expect(pins).toHaveLength(2);
    for (const pin of pins) expect(install).toContain(pin);
    const requires = JSON.parse(read('python', 'setup.py').match(/"""\n([\s\S]*?)\n"""/)![1]).install_requires as string[];
    const names = requires.map((r) => r.split(/[<>=~ ,]/)[0]);
    expect(names.sort()).toEqual(['aws-cdk-lib', 'constructs', 'jsii', 'publication']);
    expect(install).toContain('Installing the wheel needs `jsii`, `aws-cdk-lib`, `constructs` and `publication` from PyPI');
  });

  test('the generated Python compiles', () => {
    const sources = path.join(dist(), 'python', 'src');
    const files = (fs.readdirSync(sources, { recursive: true }) as string[]).filter((f) => f.endsWith('.py')).map((f) => path.join(sources, f));
    expect(files.map((f) => path.relative(sources, f)).sort()).toEqual([
      path.join('cdk_chap_credentials', '__init__.py'), path.join('cdk_chap_credentials', '_jsii', '__init__.py'),
    ]);
    // py_compile exits non-zero on the first file that does not compile.
    execFileSync('python3', ['-m', 'py_compile', ...files], { stdio: 'pipe' });
  });

  test('every package carries the library, its assembly and the handler bundle for the jsii runtime to load', () => {
    const expected = ['.jsii', 'assets/handler/index.js', 'lib/chap-credentials.js', 'lib/index.js', 'package.json'];
    const [jsiiTarball, npmTarball] = [`${pkg.name}@${pkg.version}.jsii.tgz`, `${pkg.name}-${pkg.version}.tgz`];
    const { python, java, dotnet, go } = pkg.jsii.targets;
    for (const embedded of [
      path.join('python', 'src', python.module, '_jsii', jsiiTarball),
      path.join('java', 'src', 'main', 'resources', ...java.package.split('.'), jsiiTarball),
      path.join('dotnet', dotnet.packageId, npmTarball),
      path.join('go', go.packageName, 'jsii', npmTarball),
    ]) {
      const entries = execFileSync('tar', ['-tzf', path.join(dist(), embedded)], { encoding: 'utf8' }).split('\n').map((e) => e.replace(/^package\//, ''));
      expect([embedded, entries]).toEqual([embedded, expect.arrayContaining(expected)]);
    }
  });

  test("the Python, .NET and Go packages' docs show the README's examples in their own language", () => {
    const { dotnet, go } = pkg.jsii.targets;
    const pythonReadme = read('python', 'README.md');
    expect(pythonReadme).toContain('chap = ChapCredentials(self, "Chap",');
    expect(pythonReadme).toContain('for command in linux.linux_commands:');
    expect(read('go', go.packageName, 'README.md')).toContain('chap := cdkchapcredentials.NewChapCredentials(this, jsii.String("Chap"), &ChapCredentialsProps{');
    expect(read('dotnet', dotnet.packageId, dotnet.namespace, 'NamespaceDoc.cs')).toContain('var chap = new ChapCredentials(this, "Chap", new ChapCredentialsProps {');
    for (const doc of [pythonReadme, read('go', go.packageName, 'README.md')]) {
      expect(doc).not.toContain("new ChapCredentials(this, 'Chap'");
    }
  });
});
