/**
 * The tarballs a jsii language hands the kernel: each jsii package of the closure, packed from what `npm ci` installed
 * (`npm pack <folder>`, offline, no lifecycle scripts), loaded dependencies first, as the generated code of every
 * language does (a module loads the assemblies it depends on before its own).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { KernelClient } from './kernel-client';

const execFileAsync = promisify(execFile);

/** An installed package the kernel must load. */
export interface InstalledAssembly {
  readonly name: string;
  readonly version: string;
  /** Its installed folder. */
  readonly dir: string;
}

/** A package packed for the kernel. */
export interface PackedAssembly {
  readonly name: string;
  readonly version: string;
  /** The `.tgz` (npm-pack layout: every file under `package/`). */
  readonly tarball: string;
}

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly dependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly bundledDependencies?: string[];
  readonly bundleDependencies?: string[];
}

function readPackageJson(dir: string): PackageJson {
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Whether the installed folder is a jsii assembly (its `.jsii`, possibly a redirect to `.jsii.gz`, is there). */
export function isJsiiAssembly(dir: string): boolean {
  return fs.existsSync(path.join(dir, '.jsii'));
}

/** The folder Node would load `name` from, looking up from `fromDir` (package `exports` do not matter here). */
export function installedDir(name: string, fromDir: string): string {
  for (let dir = path.resolve(fromDir); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`'${name}' is not installed above ${fromDir}`);
  }
}

/**
 * The jsii packages to load for the package in `rootDir`, dependencies before their dependents and the package last:
 * its `dependencies` and `peerDependencies` that are not bundled, recursively. A dependency that is neither bundled
 * nor a jsii assembly cannot be loaded by the kernel at all, so it is an error here.
 */
export function jsiiLoadOrder(rootDir: string): InstalledAssembly[] {
  const order: InstalledAssembly[] = [];
  const visiting = new Set<string>();
  const visit = (dir: string): void => {
    const pkg = readPackageJson(dir);
    const seen = order.find((a) => a.name === pkg.name);
    if (seen) {
      if (seen.version !== pkg.version) throw new Error(`${pkg.name} is needed at ${seen.version} and ${pkg.version}: the kernel loads one version`);
      return;
    }
    if (visiting.has(pkg.name)) throw new Error(`${pkg.name} depends on itself through its dependencies: no load order exists`);
    visiting.add(pkg.name);
    if (!isJsiiAssembly(dir)) throw new Error(`${pkg.name}@${pkg.version} (${dir}) is not a jsii assembly: it has no .jsii file`);
    const bundled = new Set([...pkg.bundledDependencies ?? [], ...pkg.bundleDependencies ?? []]);
    for (const dep of Object.keys({ ...pkg.peerDependencies, ...pkg.dependencies }).sort()) {
      if (bundled.has(dep)) continue;
      visit(installedDir(dep, dir));
    }
    order.push({ name: pkg.name, version: pkg.version, dir });
  };
  visit(rootDir);
  return order;
}

/** `npm pack` of an installed folder into `destDir`: offline, no lifecycle scripts. Returns the tarball's path. */
export async function npmPack(dir: string, destDir: string): Promise<string> {
  const { stdout } = await execFileAsync('npm', ['pack', dir, '--pack-destination', destDir, '--ignore-scripts', '--offline', '--json'], {
    maxBuffer: 256 * 1024 * 1024, // --json lists every file of the package
  });
  const [{ filename }] = JSON.parse(stdout) as Array<{ filename: string }>;
  return path.join(destDir, filename);
}

/** Packs every assembly (in parallel) into `destDir`. */
export async function packAll(assemblies: readonly InstalledAssembly[], destDir: string): Promise<PackedAssembly[]> {
  return Promise.all(assemblies.map(async ({ name, version, dir }) => ({ name, version, tarball: await npmPack(dir, destDir) })));
}

/** Loads the tarballs in order; checks that the kernel names each assembly as asked. */
export async function loadAll(kernel: KernelClient, packed: readonly PackedAssembly[]): Promise<void> {
  for (const { name, version, tarball } of packed) {
    const { assembly } = await kernel.load(name, version, tarball);
    if (assembly !== name) throw new Error(`loading ${tarball} gave assembly '${assembly}', not '${name}'`);
  }
}
