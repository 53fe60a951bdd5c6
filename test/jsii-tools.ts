/** Runs the jsii tools from node_modules (never a network install) and reads what `npm run build` made. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.join(__dirname, '..');

/** The jsii tools print a large banner on Node releases they no longer support; it says nothing about our code. */
const env = { ...process.env, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: process.versions.node.split('.')[0] };

export interface ToolResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node_modules/.bin/<tool> ...args` in `cwd` (the project by default). */
export function runTool(tool: string, args: string[], cwd = ROOT): ToolResult {
  const result = spawnSync(path.join(ROOT, 'node_modules', '.bin', tool), args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The jsii assembly `npm run build` wrote (`.jsii`). */
export function readAssembly() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, '.jsii'), 'utf8'));
}

export function readPackageJson() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
}

/** A README section: from its `## title` line to the next `## ` heading. */
export function readmeSection(title: string): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no '## ${title}' section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

const temp: string[] = [];
/** A fresh temporary folder, removed after the test file. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temp.push(dir);
  return dir;
}
afterAll(() => temp.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
