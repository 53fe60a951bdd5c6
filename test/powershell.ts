/**
 * PowerShell read with a real PowerShell grammar (tree-sitter-powershell's WebAssembly build, loaded by
 * web-tree-sitter: no native module to compile) and a conservative taint analysis over the syntax tree: which
 * variables may hold a value read from Secrets Manager, and which programs outside PowerShell (native executables)
 * would receive one on their command line.
 */
import * as fs from 'node:fs';
import { Language, Node, Parser } from 'web-tree-sitter';

export type SyntaxNode = Node;

/** A parser for PowerShell; load it once (in beforeAll). */
export async function powerShellParser(): Promise<(source: string) => SyntaxNode> {
  await Parser.init();
  // The grammar's bytes, read here: web-tree-sitter would otherwise import node:fs dynamically, which jest forbids.
  const language = await Language.load(fs.readFileSync(require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm')));
  const parser = new Parser();
  parser.setLanguage(language);
  return (source) => parser.parse(source)!.rootNode;
}

function* nodes(node: SyntaxNode): Generator<SyntaxNode> {
  yield node;
  for (const child of node.children) yield* nodes(child);
}

/** Where the parser found no valid PowerShell (ERROR nodes) or had to invent a token (MISSING nodes). */
export function syntaxProblems(root: SyntaxNode): string[] {
  return [...nodes(root)].filter((n) => n.type === 'ERROR' || n.isMissing)
    .map((n) => `line ${n.startPosition.row + 1}: ${n.isMissing ? 'missing ' + n.type : n.text.slice(0, 60)}`);
}

/** `$script:Pair` and `${pair}` are the same variable to this analysis: lower case, no sigil, scope or braces. */
const variableName = (n: SyntaxNode) => n.text.replace(/^\$\{?/, '').replace(/\}$/, '').replace(/^(script|global|local|private):/i, '').toLowerCase();

/** The name a command invokes (lower case), or undefined when it is computed or a script block. */
function commandName(command: SyntaxNode): string | undefined {
  const name = command.childForFieldName('command_name');
  if (!name) return undefined;
  if (name.type === 'command_name') return name.text.toLowerCase();
  const literal = name.children.find((c) => c.type === 'command_name');
  return literal?.text.toLowerCase();
}

const isScriptBlockInvocation = (command: SyntaxNode) =>
  command.childForFieldName('command_name')?.type === 'command_name_expr'
  && command.childForFieldName('command_name')!.children.some((c) => c.type === 'script_block_expression');

export interface TaintReport {
  /** Variables that may hold a secret (conservatively: anything computed from one). */
  readonly tainted: string[];
  /** Functions the script defines. */
  readonly functions: string[];
  /** Every command invoked, by name, lower case. */
  readonly commands: string[];
  /** Native executables (and cmdlets that start one) invoked, with their arguments' text. */
  readonly natives: { name: string; arguments: string }[];
  /** The natives among them whose arguments may hold a secret. */
  readonly leaks: string[];
  /** Calls of the `sinks` asked for (logs, task registration) whose arguments may hold a secret. */
  readonly sinkLeaks: string[];
}

export interface TaintOptions {
  /**
   * Members that hold no secret even on a secret-bearing object (lower case), such as the `VersionId` of
   * Get-SECSecretValue's response: `$secret.VersionId` carries nothing, `$secret.SecretString` does.
   */
  readonly metadata?: string[];
  /** Commands (lower case) whose arguments must not hold a secret, beside native programs. */
  readonly sinks?: string[];
}

/** Cmdlets that hand their arguments to another program's command line. */
const STARTS_PROGRAMS = new Set(['start-process', 'invoke-expression', 'iex', 'saps', 'start']);
const SOURCES = new Set(['get-secsecretvalue']);

export function taint(root: SyntaxNode, options: TaintOptions = {}): TaintReport {
  const metadata = new Set(options.metadata ?? []);
  /** `$x.VersionId` where VersionId is metadata: the variable is read for that member only. */
  const readForMetadata = (v: SyntaxNode) => v.parent?.type === 'member_access' && v.parent.children[0].id === v.id
    && metadata.has(v.parent.children.find((c) => c.type === 'member_name')?.text.toLowerCase() ?? '');
  const all = [...nodes(root)];
  const functions = new Map<string, { params: string[]; body: SyntaxNode }>();
  for (const f of all.filter((n) => n.type === 'function_statement')) {
    const name = f.children.find((c) => c.type === 'function_name')!.text.toLowerCase();
    const declaration = f.children.find((c) => c.type === 'function_parameter_declaration');
    const paramBlock = [...nodes(f)].filter((n) => n.type === 'param_block');
    const params = [declaration, ...paramBlock].filter((n): n is SyntaxNode => Boolean(n))
      .flatMap((d) => [...nodes(d)].filter((n) => n.type === 'script_parameter').map((p) => variableName(p.children.find((c) => c.type === 'variable')!)));
    functions.set(name, { params, body: f.children.find((c) => c.type === 'script_block')! });
  }
  const commands = all.filter((n) => n.type === 'command');
  const tainted = new Set<string>();
  const taintingFunctions = new Set<string>();
  /** Whether evaluating `node` may yield a secret. */
  const carries = (node: SyntaxNode): boolean => [...nodes(node)].some((n) =>
    (n.type === 'variable' && tainted.has(variableName(n)) && !readForMetadata(n))
    || (n.type === 'command' && (SOURCES.has(commandName(n) ?? '') || taintingFunctions.has(commandName(n) ?? ''))));

  for (let changed = true; changed;) {
    changed = false;
    const mark = (name: string) => {
      if (!tainted.has(name)) {
        tainted.add(name);
        changed = true;
      }
    };
    for (const a of all.filter((n) => n.type === 'assignment_expression')) {
      const [left, , right] = a.children;
      if (right && carries(right)) [...nodes(left)].filter((n) => n.type === 'variable').forEach((v) => mark(variableName(v)));
    }
    for (const loop of all.filter((n) => n.type === 'foreach_statement')) {
      const [variable, collection] = loop.namedChildren;
      if (collection && carries(collection)) mark(variableName(variable));
    }
    for (const [name, f] of functions) {
      if (!taintingFunctions.has(name) && carries(f.body)) {
        taintingFunctions.add(name);
        changed = true;
      }
      for (const call of commands.filter((c) => commandName(c) === name)) {
        const args = call.childForFieldName('command_elements');
        if (args && carries(args)) f.params.forEach(mark);
      }
    }
  }

  const isNative = (c: SyntaxNode) => {
    if (isScriptBlockInvocation(c)) return false;
    const name = commandName(c);
    if (name === undefined) return true; // computed: could be anything
    if (STARTS_PROGRAMS.has(name)) return true;
    return !functions.has(name) && !/^[a-z]+-[a-z0-9]+$/.test(name);
  };
  const natives = commands.filter(isNative).map((c) => ({
    name: commandName(c) ?? c.childForFieldName('command_name')?.text ?? c.text, arguments: c.childForFieldName('command_elements')?.text ?? '', node: c,
  }));
  return {
    tainted: [...tainted].sort(),
    functions: [...functions.keys()],
    commands: [...new Set(commands.map((c) => commandName(c)).filter((n): n is string => n !== undefined))].sort(),
    natives: natives.map(({ name, arguments: a }) => ({ name, arguments: a })),
    leaks: natives.filter((n) => {
      const args = n.node.childForFieldName('command_elements');
      return args !== null && carries(args);
    }).map((n) => `${n.name} ${n.arguments}`),
    sinkLeaks: commands.filter((c) => (options.sinks ?? []).includes(commandName(c) ?? '')).filter((c) => {
      const args = c.childForFieldName('command_elements');
      return args !== null && carries(args);
    }).map((c) => c.text),
  };
}
