/**
 * `explore` benchmark: analyze + compress on each fixture (and a ResNet-18-sized model when
 * `.tmp/resnet18-fmnist.onnx` exists): wall times, evaluations, compression ratios with sharing
 * alone and with all techniques (ONNX file and archive), and the loss on held-out data the search
 * did not see (95 % CI), the upper bound the choice used and whether the held-out set moved the
 * choice (walk-back). Budget 0.5 points of top-1. `node dist/bench.js explore [--greedy]
 * [--models=lenet5,resnet8] [--max-loss=0.5]`; `--greedy` adds the greedy baseline (sharing) on
 * LeNet and ResNet-8 and prints the evaluation ratio both ways (search only, and with the cells).
 */
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadDatasetSpec } from '../src/engine/eval/datasetSpec';
import { compressModel, parseTechniques } from '../src/engine/explore';
import type { Bench } from './main';

const FIX = 'test/fixtures';

async function run(args: string[]): Promise<void> {
  const only = args.find((a) => a.startsWith('--models='))?.slice(9).split(',');
  const models = ['lenet5', 'resnet8', 'mobilenet'].map((m) => join(FIX, `${m}.onnx`)).filter(existsSync);
  if (existsSync('.tmp/resnet18-fmnist.onnx')) models.push('.tmp/resnet18-fmnist.onnx');
  const picked = only ? models.filter((m) => only.includes(basename(m, '.onnx'))) : models;
  const data = { spec: await loadDatasetSpec(join(FIX, 'data/fmnist-test-1000.dataset.json')), source: 'fmnist-test-1000' };
  const holdout = { spec: await loadDatasetSpec(join(FIX, 'data/fmnist-holdout-1000.dataset.json')), source: 'fmnist-holdout-1000' };
  const budget = Number(args.find((a) => a.startsWith('--max-loss='))?.slice(11) ?? '0.5') / 100;
  console.log(`budget ${(budget * 100).toFixed(2)} points on the search data; held-out loss on 1000 unseen samples\n`);
  console.log('model | techniques | method | seconds | cells | search evals | bytes | ratio | archive ratio | loss (flips up/down) | upper bound | held-out loss [95 % CI] | held-out used to choose');
  for (const m of picked) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-explore-'));
    const model = join(dir, basename(m));
    copyFileSync(m, model);
    const configs: Array<[string, 'fast' | 'greedy']> = [['share', 'fast'], ['all', 'fast']];
    if (args.includes('--greedy') && /lenet5|resnet8/.test(m)) configs.push(['share', 'greedy']);
    const evals: Record<string, { cells: number; search: number }> = {};
    for (const [tech, method] of configs) {
      const t0 = performance.now();
      const cf = await compressModel({ model, data, holdout, maxLoss: budget, techniques: parseTechniques(tech), method, out: join(dir, `${tech}.compress`) });
      const s = (performance.now() - t0) / 1000;
      const c = cf.candidates.find((x) => x.id === cf.chosen);
      const b = cf.breakdown!;
      const pt = (x: number | undefined) => (x === undefined ? '—' : (x * 100).toFixed(2));
      const h = c?.holdout;
      console.log(
        [basename(m), tech, method, s.toFixed(1), b.cells, b.search, c?.bytes ?? '—', c ? `${c.ratio.toFixed(2)}×` : '—', c?.archiveBytes ? `${(cf.model.bytes / c.archiveBytes).toFixed(2)}×` : '—', c ? `${pt(c.loss)} (${c.flips?.up}/${c.flips?.down})` : '—', pt(c?.lossUpper), h ? `${pt(h.loss)} [${pt(h.ci?.[0])}, ${pt(h.ci?.[1])}]` : '—', cf.selection?.holdoutUsedForChoice ? `yes (${cf.selection.holdoutChecked.length} checked)` : 'no'].join(' | '),
      );
      if (tech === 'share') evals[method] = { cells: Math.max(b.cells, evals['fast']?.cells ?? 0), search: b.search };
    }
    const f = evals['fast'];
    const g = evals['greedy'];
    if (f && g) console.log(`${basename(m)} share: greedy/fast evaluations = ${(g.search / f.search).toFixed(1)}× (search only), ${(g.search / (f.search + f.cells)).toFixed(2)}× (fast charged with its ${f.cells} sensitivity cells)`);
  }
}

/** The benchmark entry. */
export const exploreBench: Bench = { name: 'explore', summary: 'analyze + compress on the fixtures: time, evaluations, ratios, held-out loss', run };
