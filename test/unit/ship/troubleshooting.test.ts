// docs/troubleshooting.md names every reason the operator can put in a condition, a status
// failure record or an Event, and docs/runtime-protocol.md every environment variable, exit code,
// mode, port and endpoint of the operator-runtime contract (issue 13, "troubleshooting by failure
// reason" and "the runtime's protocol"). The reasons are read from the code itself, so a reason
// added anywhere fails this test until the guide explains it.
//
// How the reasons are found: every .ts file under src/ is parsed with TypeScript's parser (syntax
// only, no type checking), except src/api/generated (types), src/cli (it reads reasons, sets
// none) and src/runtime (it sets no condition or Event; its failure words are the tables of
// src/contract/, which are scanned). A reason is a CamelCase word (REASON_WORD) that is
//   - the value of a `reason: EXPR` property or a `{ reason }` shorthand, or of a variable named
//     `reason` (SpecProblem, Verdict, failure records, participant and trial states, Events);
//   - the reason argument of a condition or Event call: `.set(type, ok, REASON, message)`,
//     `.event(type, REASON, message)`, `.finish(phase, REASON, message)` and
//     `.record(obj, type, REASON, message)` (EventRecorder);
//   - a phase given to `.phase(P)` or `.finish(P, ...)`: the engine records a phase change as an
//     Event whose reason is the phase (phaseEvent in src/engine/status.ts);
//   - a string in a reason table: a variable whose name matches TABLE_NAME, or whose comment says
//     "reason(s)" (REFUSAL, SERVING_FAILURES, REJECTION_REASONS, the kubelet waiting reasons the
//     operator passes on).
// EXPR is followed through literals, `a ? b : c`, `a ?? b`, `a || b`, `x.slice()`, constants
// (`PRUNED_REASON`, `REFUSAL.conflict`, in the file or exported by another) and parameters (the
// literal arguments of the calls in that file of the function that has the parameter). A template
// or a string with a colon counts by its part before the colon (`TrialRejected: ${message}`).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { REJECTION_REASONS } from '../../../src/contract/federated.ts';
import {
  AVERAGING_PORT,
  DEFAULT_PORT,
  DEFAULT_TERMINATION_LOG,
  ENDPOINTS,
  EXIT,
  MODES,
  PVC_MOUNT_ROOT,
} from '../../../src/contract/runtime.ts';
import {
  SERVICE_PORT,
  SERVING_ENDPOINTS,
  SERVING_FAILURES,
  SERVING_PORT,
} from '../../../src/contract/serving.ts';
import { RUNTIME_SPEC_MAX_BYTES } from '../../../src/contract/training.ts';
import { REASON_ACCEPTED } from '../../../src/engine/acceptance.ts';
import { REFUSAL } from '../../../src/engine/children.ts';
import { PRUNED_REASON } from '../../../src/controllers/trainingjob/trials.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SKIPPED = ['src/api/generated', 'src/cli', 'src/runtime'];
const REASON_WORD = /^[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)*$/;
const TABLE_NAME = /REASON|REFUSAL|FAILURES|STUCK/;
/** Call name: [number of arguments, index of the reason]. */
const REASON_ARGUMENT: Record<string, [number, number]> = {
  set: [4, 2],
  event: [3, 1],
  finish: [3, 1],
  record: [4, 2],
};

/**
 * Reasons in the code that no object ever shows, and why; the test checks that each is still
 * found, so this list cannot keep a reason that left the code.
 */
const NEVER_SHOWN: Record<string, string> = {
  Unused: "FederatedRound's Workload.complete, which the engine never calls for a kind with phases",
};

function tsFiles(dir: string, skip: string[]): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    const rel = relative(root, path);
    if (skip.some((s) => rel === s || rel.startsWith(`${s}/`))) return [];
    if (e.isDirectory()) return tsFiles(path, skip);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const parse = (file: string) =>
  ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2023, true);

function unwrap(e: ts.Expression): ts.Expression {
  let x = e;
  while (
    ts.isParenthesizedExpression(x) ||
    ts.isAsExpression(x) ||
    ts.isNonNullExpression(x) ||
    ts.isSatisfiesExpression(x)
  )
    x = x.expression;
  return x;
}

const calleeName = (call: ts.CallExpression): string =>
  ts.isPropertyAccessExpression(call.expression)
    ? call.expression.name.text
    : ts.isIdentifier(call.expression)
      ? call.expression.text
      : '';

const functionName = (fn: ts.SignatureDeclaration): string | undefined => {
  if (fn.name && (ts.isIdentifier(fn.name) || ts.isPrivateIdentifier(fn.name))) return fn.name.text;
  const parent = fn.parent;
  return parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)
    ? parent.name.text
    : undefined;
};

/** Where each reason of the code is set: file:line. */
function collectReasons(): Map<string, Set<string>> {
  const sources = tsFiles(join(root, 'src'), SKIPPED).map(parse);
  // Variables by file and name, and the top-level ones by name alone (for imported constants).
  const local = new Map<string, ts.Expression[]>();
  const exported = new Map<string, ts.Expression[]>();
  const calls = new Map<ts.SourceFile, ts.CallExpression[]>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => m.set(k, [...(m.get(k) ?? []), v]);
  for (const sf of sources) {
    const visit = (n: ts.Node): void => {
      if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer) {
        push(local, `${sf.fileName}#${n.name.text}`, n.initializer);
        if (ts.isSourceFile(n.parent.parent.parent)) push(exported, n.name.text, n.initializer);
      }
      if (ts.isCallExpression(n)) push(calls, sf, n);
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }

  const word = (text: string): string[] => {
    const head = text.split(':')[0]?.trim() ?? '';
    return REASON_WORD.test(head) ? [head] : [];
  };

  function constants(sf: ts.SourceFile, name: string): ts.Expression[] {
    return local.get(`${sf.fileName}#${name}`) ?? exported.get(name) ?? [];
  }

  /** The function around `at` that has a parameter `name`, and its index. */
  function parameterOf(at: ts.Node, name: string) {
    for (let n: ts.Node | undefined = at; n; n = n.parent) {
      if (!ts.isFunctionLike(n)) continue;
      const index = n.parameters.findIndex((p) => ts.isIdentifier(p.name) && p.name.text === name);
      if (index >= 0) return { fn: functionName(n), index };
    }
    return undefined;
  }

  /** The values given to a parameter: the arguments of the calls of its function in the file. */
  function parameterValues(
    sf: ts.SourceFile,
    param: { fn?: string; index: number },
    seen: Set<ts.Node>,
  ): string[] {
    return (calls.get(sf) ?? [])
      .filter((c) => param.fn !== undefined && calleeName(c) === param.fn)
      .flatMap((c) => {
        const arg = c.arguments[param.index];
        return arg ? values(sf, arg, seen) : [];
      });
  }

  function values(sf: ts.SourceFile, expr: ts.Expression, seen = new Set<ts.Node>()): string[] {
    const e = unwrap(expr);
    if (seen.has(e)) return [];
    seen.add(e);
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return word(e.text);
    if (ts.isTemplateExpression(e)) return e.head.text.includes(':') ? word(e.head.text) : [];
    if (ts.isConditionalExpression(e))
      return [...values(sf, e.whenTrue, seen), ...values(sf, e.whenFalse, seen)];
    if (
      ts.isBinaryExpression(e) &&
      (e.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken ||
        e.operatorToken.kind === ts.SyntaxKind.BarBarToken)
    )
      return [...values(sf, e.left, seen), ...values(sf, e.right, seen)];
    if (ts.isCallExpression(e) && ts.isPropertyAccessExpression(e.expression))
      return ['slice', 'trim'].includes(e.expression.name.text)
        ? values(sf, e.expression.expression, seen)
        : [];
    if (ts.isIdentifier(e)) {
      const param = parameterOf(e, e.text);
      if (param) return parameterValues(sf, param, seen);
      return constants(sf, e.text).flatMap((i) => values(sf, i, seen));
    }
    if (ts.isPropertyAccessExpression(e) && ts.isIdentifier(e.expression)) {
      // A parameter's field (`verdict.reason`) is whatever the caller passed: not a table.
      if (parameterOf(e, e.expression.text)) return [];
      return constants(sf, e.expression.text).flatMap((i) => {
        const table = unwrap(i);
        if (!ts.isObjectLiteralExpression(table)) return [];
        return table.properties.flatMap((p) =>
          ts.isPropertyAssignment(p) && p.name.getText(sf) === e.name.text
            ? values(sf, p.initializer, seen)
            : [],
        );
      });
    }
    return [];
  }

  /** Every string of a table (values, elements; not property names). */
  function tableStrings(n: ts.Node): string[] {
    const out: string[] = [];
    const visit = (c: ts.Node): void => {
      const isName = ts.isPropertyAssignment(c.parent) && c.parent.name === c;
      if (ts.isStringLiteral(c) && !isName) out.push(...word(c.text));
      ts.forEachChild(c, visit);
    };
    visit(n);
    return out;
  }

  const found = new Map<string, Set<string>>();
  for (const sf of sources) {
    const where = (n: ts.Node) =>
      `${relative(root, sf.fileName)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
    const add = (n: ts.Node, reasons: string[]) => {
      for (const r of reasons) found.set(r, (found.get(r) ?? new Set()).add(where(n)));
    };
    const visit = (n: ts.Node): void => {
      if (ts.isPropertyAssignment(n) && n.name.getText(sf) === 'reason')
        add(n, values(sf, n.initializer));
      if (ts.isShorthandPropertyAssignment(n) && n.name.text === 'reason')
        add(n, values(sf, n.name));
      if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer) {
        if (n.name.text === 'reason') add(n, values(sf, n.initializer));
        const statement = n.parent.parent;
        const comment = (ts.getLeadingCommentRanges(sf.text, statement.getFullStart()) ?? [])
          .map((c) => sf.text.slice(c.pos, c.end))
          .join('\n');
        if (TABLE_NAME.test(n.name.text) || /\breasons?\b/i.test(comment))
          add(n, tableStrings(n.initializer));
      }
      if (ts.isCallExpression(n)) {
        const name = calleeName(n);
        const arg = REASON_ARGUMENT[name];
        if (arg && n.arguments.length === arg[0]) add(n, values(sf, n.arguments[arg[1]]!));
        if ((name === 'phase' && n.arguments.length === 1) || (arg && name === 'finish'))
          add(n, values(sf, n.arguments[0]!));
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return found;
}

const troubleshooting = readFileSync(join(root, 'docs', 'troubleshooting.md'), 'utf8');
const protocol = readFileSync(join(root, 'docs', 'runtime-protocol.md'), 'utf8');
/** Backquoted words of a document: `Reason`, `LEPTON_RANK`, `/progress`. */
const quoted = (doc: string) => new Set([...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]));

describe('docs/troubleshooting.md', () => {
  const reasons = collectReasons();
  const documented = quoted(troubleshooting);

  it('is read from a scan that finds the reasons exported as constants and tables', () => {
    // If the scan stopped following constants or tables, these would go missing first.
    const anchors = [
      REASON_ACCEPTED,
      PRUNED_REASON,
      ...Object.values(REFUSAL),
      ...Object.values(SERVING_FAILURES),
      ...Object.values(REJECTION_REASONS),
    ];
    expect(anchors.filter((r) => !reasons.has(r))).toEqual([]);
  });

  it('explains every reason the operator can set', () => {
    const missing = [...reasons]
      .filter(([r]) => !(r in NEVER_SHOWN) && !documented.has(r))
      .map(([r, at]) => `${r} (${[...at].join(', ')})`)
      .sort();
    expect(missing).toEqual([]);
  });

  it('keeps its list of reasons never shown in step with the code', () => {
    expect(Object.keys(NEVER_SHOWN).filter((r) => !reasons.has(r))).toEqual([]);
  });

  it('names the exit codes the operator tells apart', () => {
    const missing = Object.entries(EXIT).filter(
      ([name, code]) => !documented.has(String(code)) || !documented.has(name),
    );
    expect(missing).toEqual([]);
  });
});

describe('docs/runtime-protocol.md', () => {
  const documented = quoted(protocol);

  it('names every environment variable of the contract and the runtime', () => {
    // Every LEPTON_* or AWS_* string of src/contract/ (what the operator sets) and src/runtime/
    // (what the runtime also reads, such as its measurement switches).
    const names = new Set<string>();
    for (const file of [
      ...tsFiles(join(root, 'src', 'contract'), []),
      ...tsFiles(join(root, 'src', 'runtime'), []),
    ])
      for (const m of readFileSync(file, 'utf8').matchAll(/'((?:LEPTON|AWS)_[A-Z0-9_]+)'/g))
        names.add(m[1]!);
    expect(names.size).toBeGreaterThan(0);
    expect([...names].filter((n) => !documented.has(n)).sort()).toEqual([]);
  });

  it('names every exit code with its name and what the operator does with it', () => {
    const missing = Object.entries(EXIT).filter(
      ([name, code]) => !documented.has(String(code)) || !protocol.includes(`EXIT.${name}`),
    );
    expect(missing).toEqual([]);
  });

  it('names every mode, port, endpoint, failure prefix and limit of the contract', () => {
    const expected = [
      ...Object.values(MODES),
      ...[DEFAULT_PORT, AVERAGING_PORT, SERVING_PORT, SERVICE_PORT].map(String),
      ...Object.values(ENDPOINTS),
      ...Object.values(SERVING_ENDPOINTS),
      ...Object.values(SERVING_FAILURES),
      ...Object.values(REJECTION_REASONS),
      DEFAULT_TERMINATION_LOG,
      PVC_MOUNT_ROOT,
      String(RUNTIME_SPEC_MAX_BYTES),
    ];
    expect(expected.filter((x) => !documented.has(x))).toEqual([]);
  });
});
