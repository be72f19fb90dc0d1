/**
 * Fuzzing: seeded mutations of the fixture models (bit flips, truncation, byte runs, length-field
 * corruption, sibling-field swaps, field renumbering, duplicated fields) through the reader and the
 * layers above it, in process, plus a sample through the real CLI. The only acceptable failure is a
 * `CompressError` with a user code (never a TypeError, RangeError, internal error or hang).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applySpecs } from '../../../src/engine/encode/apply';
import { CompressError } from '../../../src/engine/errors';
import { resolvePlan } from '../../../src/engine/explore/plan';
import { decodeModel, encodeModel, listWeights, modelInfo, OnnxModel } from '../../../src/engine/onnx';
import { mulberry32 } from '../../../src/engine/util/random';
import { buildCli, diffSnapshots, pool, ROOT, runCli, snapshot } from './harness';
import { MUTATIONS, mutate, protoFields, type Mutation } from './mutate';

const FIXTURES = ['test/bad-inputs/tiny.onnx', 'test/fixtures/lenet5.onnx', 'test/fixtures/resnet8.onnx', 'test/fixtures/mobilenet.onnx'];
/** In-process cases per fixture (tiny is cheapest, so it gets the most). */
const CASES: Record<string, number> = { 'tiny.onnx': 1600, 'lenet5.onnx': 800, 'resnet8.onnx': 400, 'mobilenet.onnx': 400 };
/** Every Nth case that loads also goes through plan + applySpecs + encode (tiny: every 4th). */
const APPLY_EVERY: Record<string, number> = { 'tiny.onnx': 4, 'lenet5.onnx': 40, 'resnet8.onnx': 100, 'mobilenet.onnx': 100 };
const CLI_CASES = 48;

interface Tally {
  cases: number;
  loaded: number;
  applied: number;
  userErrors: Map<string, number>;
  byKind: Map<Mutation, number>;
}

/** Runs the reader and what sits on it; returns how far it got. Throws what the engine threw. */
function pipeline(bytes: Uint8Array, name: string, apply: boolean): 'rejected' | 'loaded' | 'applied' {
  const m = new OnnxModel(decodeModel(bytes, name), name);
  m.validate();
  const weights = listWeights(m);
  modelInfo(m, bytes.length);
  if (!apply || !weights.some((w) => w.compressible)) return 'loaded';
  const specs = resolvePlan({ default: { technique: 'share', k: 4 } }, weights, 'plan.json');
  // Big layers make a slow k-means without adding coverage: the first two compressible ones only.
  const few = new Map([...specs].filter(([n]) => (weights.find((w) => w.name === n)?.params ?? 0) <= 20_000).slice(0, 2));
  applySpecs(m, few, { fromDefault: new Set(few.keys()) });
  const out = encodeModel(m.proto);
  // What we write must read back.
  new OnnxModel(decodeModel(out, `${name} (re-encoded)`), name).validate();
  return 'applied';
}

describe('robustness: fuzzing the reader with mutated fixtures', function () {
  this.timeout(240_000);

  it(`in process: ${Object.values(CASES).reduce((a, b) => a + b, 0)} seeded mutations give a model or a user CompressError`, () => {
    const t: Tally = { cases: 0, loaded: 0, applied: 0, userErrors: new Map(), byKind: new Map() };
    const bad: string[] = [];
    for (const [fi, file] of FIXTURES.entries()) {
      const base = path.basename(file);
      const src = new Uint8Array(fs.readFileSync(path.join(ROOT, file)));
      const fields = protoFields(src);
      const rand = mulberry32(0x5eed + fi);
      for (let i = 0; i < CASES[base]!; i++) {
        const kind = MUTATIONS[i % MUTATIONS.length]!;
        const bytes = mutate(src, fields, rand, kind);
        t.cases++;
        t.byKind.set(kind, (t.byKind.get(kind) ?? 0) + 1);
        const t0 = performance.now();
        try {
          const r = pipeline(bytes, `${base}#${i}`, i % APPLY_EVERY[base]! === 0);
          if (r !== 'rejected') t.loaded++;
          if (r === 'applied') t.applied++;
        } catch (e) {
          if (e instanceof CompressError && e.isUserError) t.userErrors.set(e.code, (t.userErrors.get(e.code) ?? 0) + 1);
          else bad.push(`${base} case ${i} (${kind}, seed ${0x5eed + fi}): ${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e)}`);
        }
        const ms = performance.now() - t0;
        if (ms > 10_000) bad.push(`${base} case ${i} (${kind}): took ${ms.toFixed(0)} ms`);
      }
    }
    console.log(`      fuzz: ${t.cases} cases (${[...t.byKind].map(([k, n]) => `${k} ${n}`).join(', ')}); ${t.loaded} loaded, ${t.applied} compressed + re-encoded; user errors ${[...t.userErrors].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.deepEqual(bad.slice(0, 20), [], `${bad.length} crashes`);
    assert.ok(t.loaded > t.cases / 10, `only ${t.loaded} mutants loaded: the mutations are too destructive to test anything past the decoder`);
    assert.ok(t.applied > 100, `only ${t.applied} mutants went through applySpecs`);
  });

  it(`through the CLI: ${CLI_CASES} mutants × info/apply exit 0 or 2, within 10 s, no partial output`, async () => {
    buildCli();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-fuzz-'));
    try {
      const plan = path.join(work, 'plan.json');
      fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 4 } }));
      const rand = mulberry32(0xc11);
      const srcs = FIXTURES.slice(0, 2).map((f) => new Uint8Array(fs.readFileSync(path.join(ROOT, f))));
      const fieldsOf = srcs.map((s) => protoFields(s));
      const tasks: Array<() => Promise<string | undefined>> = [];
      for (let i = 0; i < CLI_CASES; i++) {
        const which = i % 2;
        const kind = MUTATIONS[Math.floor(i / 2) % MUTATIONS.length]!;
        const dir = path.join(work, `case-${i}`);
        fs.mkdirSync(path.join(dir, 'out'), { recursive: true });
        const model = path.join(dir, 'model.onnx');
        fs.writeFileSync(model, mutate(srcs[which]!, fieldsOf[which]!, rand, kind));
        tasks.push(async () => {
          const before = snapshot(dir);
          for (const args of [['info', model], ['apply', model, '--plan', plan, '--out', path.join(dir, 'out', 'x.onnx')]]) {
            const r = await runCli(args, { timeoutMs: 10_000, cwd: dir });
            const label = `${args[0]} case ${i} (${kind} of ${path.basename(FIXTURES[which]!)})`;
            if (r.timedOut) return `${label}: still running after 10 s`;
            if (r.code !== 0 && r.code !== 2) return `${label}: exit ${r.code}: ${r.stderr.slice(0, 400)}`;
            if (r.code === 2 && !/^onnx-compress: error: .*model\.onnx/m.test(r.stderr)) return `${label}: error does not name the file: ${r.stderr.slice(0, 300)}`;
            const changed = diffSnapshots(before, snapshot(dir)).filter((d) => !(r.code === 0 && args[0] === 'apply' && /^\+out\/x\.onnx(\.data)?$/.test(d)));
            if (changed.length) return `${label}: files changed: ${changed.join(' ')}`;
          }
          return undefined;
        });
      }
      const problems = (await Promise.all(pool(tasks, 2))).filter((x): x is string => x !== undefined);
      assert.deepEqual(problems, []);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
