/**
 * Untrusted content: node and tensor names with `<script>`, quotes, newlines and 10 000 characters
 * go through info, apply, analyze and compress and render as text in report.html / report.md / CSV;
 * model paths read from a results file never leave the workspace.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompressError } from '../../../src/engine/errors';
import { exportCandidate } from '../../../src/engine/explore';
import { fileSha256 } from '../../../src/engine/explore/workspace';
import { buildCli, ROOT, runCli } from './harness';

const HOSTILE = path.join(ROOT, 'test/bad-inputs/special/hostile-names.onnx');
const EVIL_WEIGHT = '<script>alert(1)</script>.weight';

describe('robustness: untrusted names and paths', function () {
  this.timeout(180_000);
  let work: string;
  before(() => {
    buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnxc-untrusted-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('hostile names survive info/apply --json and render as text in report.html, report.md and the CSVs', async () => {
    const model = path.join(work, 'hostile.onnx');
    fs.copyFileSync(HOSTILE, model);
    const info = await runCli(['info', model, '--json']);
    assert.equal(info.code, 0, info.stderr);
    const names = JSON.parse(info.stdout).weights.map((w: { name: string }) => w.name);
    assert.ok(names.includes(EVIL_WEIGHT));
    assert.ok(names.some((n: string) => n.length > 300 && n.includes('"q"')));
    const plan = path.join(work, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ default: { technique: 'share', k: 4 } }));
    const apply = await runCli(['apply', model, '--plan', plan, '--out', path.join(work, 'out.onnx'), '--json']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.ok(JSON.parse(apply.stdout).layers.some((l: { name: string }) => l.name === EVIL_WEIGHT));
    const out = path.join(work, 'res');
    const c = await runCli(['compress', model, '--data-free', '--limit', '16', '--sensitivity-limit', '16', '--techniques', 'share', '--max-loss', '50', '--out', out], { timeoutMs: 120_000 });
    assert.equal(c.code, 0, c.stderr);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    assert.equal((html.match(/<script/gi) ?? []).length, 0, 'no script element');
    assert.equal((html.match(/<img/gi) ?? []).length, 0, 'no injected element');
    assert.ok(/(&lt;|&#60;)script(&gt;|&#62;)alert\(1\)(&lt;|&#60;)\/script(&gt;|&#62;)\.weight/.test(html), 'the name is shown, escaped');
    const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    assert.ok(!md.includes('<script>'), 'no raw <script> in Markdown');
    const csv = fs.readFileSync(path.join(out, 'sensitivity.csv'), 'utf8');
    assert.match(csv, /^<script>alert\(1\)<\/script>\.weight,Gemm,/m, 'a plain field (no comma, quote or newline to escape)');
    assert.match(csv, /^"w2 & ""q"" 'L{300}",Gemm,/m, 'quotes doubled inside a quoted field (RFC 4180)');
    // A sensitivity.json rewritten by hand with a newline in a layer name still parses as JSON.
    assert.doesNotThrow(() => JSON.parse(fs.readFileSync(path.join(out, 'sensitivity.json'), 'utf8')));
  });

  it('exportCandidate refuses model paths outside the workspace, absolute paths and non-ONNX targets', async () => {
    const ws = path.join(work, 'ws');
    const res = path.join(ws, 'lenet5.compress');
    fs.mkdirSync(res, { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'test/fixtures/lenet5.onnx'), path.join(ws, 'lenet5.onnx'));
    const base = { schema: 'onnx-compress/candidates@1', candidates: [{ id: 'c1', plan: { default: { technique: 'share', k: 4 } } }], outputs: { model: '../../etc/passwd' } };
    const attempts: Array<[unknown, RegExp]> = [
      [{ ...base, model: { file: '../../etc/passwd', sha256: 'x' } }, /names the model '\.\.\/\.\.\/etc\/passwd', which is not an \.onnx file inside/],
      [{ ...base, model: { file: '/etc/passwd', sha256: 'x' } }, /names the model '\/etc\/passwd'/],
      [{ ...base, model: { file: '../outside.onnx', sha256: 'x' } }, /names the model '\.\.\/outside\.onnx'/],
      [{ ...base, model: { file: 'lenet5.compress', sha256: 'x' } }, /not an \.onnx file/],
      [{ ...base, candidates: 'c1', model: { file: 'lenet5.onnx', sha256: 'x' } }, /is not a candidates file/],
      [null, /is not a candidates file/],
      [{ ...base, model: { file: 'lenet5.onnx', sha256: 'not-the-hash' } }, /is missing or changed since/],
    ];
    for (const [cf, re] of attempts) {
      fs.writeFileSync(path.join(res, 'candidates.json'), JSON.stringify(cf));
      await assert.rejects(exportCandidate(res, 'c1', path.join(ws, 'out.onnx')), (e: unknown) => e instanceof CompressError && e.code === 'E_BAD_ARGUMENT' && re.test(e.message), JSON.stringify(cf).slice(0, 120));
      assert.ok(!fs.existsSync(path.join(ws, 'out.onnx')));
    }
    // With an explicit workspace root, a model beside the results folder's parent is allowed.
    fs.writeFileSync(path.join(res, 'candidates.json'), JSON.stringify({ ...base, model: { file: 'lenet5.onnx', sha256: fileSha256(path.join(ws, 'lenet5.onnx')) } }));
    const r = await exportCandidate(res, 'c1', path.join(ws, 'out.onnx'), false, ws);
    assert.ok(fs.statSync(r.model).size > 0);
  });
});
