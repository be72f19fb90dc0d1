import { strict as assert } from 'node:assert';
import { csvField, esc, htmlReport, markdownReport, sensitivityCsv } from '../../../src/engine/report';
import type { CandidatesFile, SensitivityFile } from '../../../src/engine/explore/types';

const EVIL = '<script>alert("x")</script>\n"q\'&|`, =1+1';

function files(): { sf: SensitivityFile; cf: CandidatesFile } {
  const model = { file: `m${EVIL}.onnx`, sha256: 'ab'.repeat(32), bytes: 100000, compressibleParams: 1000 };
  const dataset = { source: `d${EVIL}`, samples: 100, labels: true };
  const sf: SensitivityFile = {
    schema: 'onnx-compress/sensitivity@1',
    tool: 'onnx-compress',
    model,
    dataset,
    confidence: 0.95,
    budget: 0.05,
    baseline: { top1: 0.9, samples: 100 },
    levels: [{ id: 'share:k=4', technique: 'share', label: `k=4${EVIL}`, spec: { technique: 'share', k: 4, perChannel: false } }],
    layers: [{ name: EVIL, op: 'Gemm', node: EVIL, kind: 'gemm', shape: [10, 100], params: 1000, bytes: 4000 }],
    cells: [{ layer: EVIL, level: 'share:k=4', loss: 0.003, ci: [0.003, 0.003], top1: 0.897, agreement: 0.99, samples: 100, stoppedEarly: false, bits: 2128, entropyBits: 2000, onnxBytes: 400, relError: 0.1, seconds: 0.1 }],
    complete: true,
    started: '2025-01-01T00:00:00.000Z',
    updated: '2025-01-01T00:00:00.000Z',
  };
  const cand = { id: 'c1', plan: { layers: { [EVIL]: { technique: 'share', k: 4, perChannel: false } } }, bytes: 10000, ratio: 10, theoreticalBytes: 9000, top1: 0.897, loss: 0.003, predictedLoss: 0.002, holdout: { top1: 0.89, loss: 0.004, samples: 100 }, evaluations: 2, pareto: true, feasible: true };
  const cf: CandidatesFile = {
    schema: 'onnx-compress/candidates@1',
    tool: 'onnx-compress',
    model,
    dataset,
    holdoutDataset: dataset,
    budget: { maxLoss: 0.005 },
    techniques: ['share'],
    baseline: { top1: 0.9, samples: 100 },
    candidates: [cand, { ...cand, id: 'c2', bytes: 8000, ratio: 12.5, loss: 0.01, pareto: true, feasible: false, holdout: null }],
    chosen: 'c1',
    evaluations: 3,
    seconds: 1,
    outputs: { model: `x${EVIL}.onnx` },
  };
  return { sf, cf };
}

describe('report', () => {
  it('HTML renders hostile names as text: no markup, no script, no remote content', () => {
    const { sf, cf } = files();
    const html = htmlReport(sf, cf);
    assert.equal((html.match(/<script/gi) ?? []).length, 0);
    assert.ok(html.includes(esc(EVIL)));
    assert.ok(html.includes('&#60;script&#62;alert(&#34;x&#34;)'));
    assert.ok(!/(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html), 'no remote references');
    assert.ok(html.includes("default-src 'none'"));
    // every tag in the page is one of ours
    const tags = new Set([...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => m[1]!.toLowerCase()));
    for (const t of tags) assert.ok(['html', 'head', 'meta', 'title', 'style', 'body', 'h1', 'h2', 'p', 'b', 'svg', 'line', 'text', 'polyline', 'circle', 'span', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'br'].includes(t), t);
    assert.ok(html.includes('<svg') && html.includes('class="chosen"') && html.includes('class="heat"'));
  });

  it('escape functions: HTML, Markdown cells, CSV fields', () => {
    assert.equal(esc(`<a href="x">'&`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;');
    const md = markdownReport(files().sf, files().cf);
    assert.ok(!md.includes('<script>'));
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('=1+1'), "'=1+1");
    assert.equal(csvField(null), '');
    const csv = sensitivityCsv(files().sf);
    assert.equal(csv.split('\n')[0], 'layer,op,kind,params,bytes,level,technique,label,loss,ci_lo,ci_hi,top1,agreement,samples,stopped_early,bits,entropy_bits,onnx_bytes,rel_error,kl,seconds');
    assert.ok(csv.includes('"<script>alert(""x"")</script>\n""q\'&|`, =1+1"'));
  });
});
