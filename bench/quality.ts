/**
 * Quality benchmark (issue #6 §5): `compress --max-loss 0.5` on each fixture with sharing alone,
 * with every technique, and with every technique for the smallest archive (`--target archive`),
 * under both choice rules (the 80 % upper bound, the default, and the point
 * estimate, `--confidence 0.5`), through the real CLI. The 10,000 Fashion-MNIST test images are
 * split in two: held-out data the first N (default 5000, `--split N`), search data the rest (dataset
 * JSONs over Debian's `dataset-fashion-mnist` IDX files, written to the results folder). Prints
 * ratio (original file ÷ compressed ONNX), archive ratio, search and held-out loss per run. Results
 * go to `.tmp/bench-quality/` (the point-estimate run resumes the 80 % run's sensitivity study).
 * Never run by tests.
 *
 * Why 5000 held-out images: on 2000 the held-out loss of one plan moves by ±0.3 points from block to
 * block (ResNet-8 at 10.3×: 0.60, 0.00, 0.20, 0.15, 0.30 on images 0–1999, …, 8000–9999), as wide
 * as the budget, so the check passed or failed plans by the luck of the block.
 *
 *   node dist/bench.js quality [lenet5|resnet8|mobilenet ...] [--split N] [--share-only]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Bench } from './main';

const TEST_IMAGES = 10_000;

/** A dataset JSON over Debian's Fashion-MNIST test set, images `offset` … `offset + limit − 1`. */
function fmnist(offset: number, limit: number): string {
  const dir = '/usr/share/datasets/fashion-mnist';
  return JSON.stringify({ format: 'idx', inputs: `${dir}/t10k-images-idx3-ubyte.gz`, labels: `${dir}/t10k-labels-idx1-ubyte.gz`, preprocess: { scale: 1 / 255, mean: [0.286], std: [0.353] }, offset, limit });
}
const FIXTURES = ['lenet5', 'resnet8', 'mobilenet'];
/** Runs per fixture: techniques, and the target the search makes small (`all → archive`: `--target archive`). */
const TECHNIQUES: Record<string, { list: string; target: 'onnx' | 'archive' }> = {
  share: { list: 'share', target: 'onnx' },
  all: { list: 'share,prune,quant,float,lowrank', target: 'onnx' },
  'all → archive': { list: 'share,prune,quant,float,lowrank', target: 'archive' },
};

async function run(args: string[]): Promise<void> {
  if (!fs.existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz')) {
    console.log('skipped: needs Debian\'s dataset-fashion-mnist (apt-get install dataset-fashion-mnist)');
    return;
  }
  const models = FIXTURES.filter((m) => args.includes(m));
  const at = args.indexOf('--split');
  const split = at >= 0 ? Number(args[at + 1]) : 5000;
  if (!(Number.isInteger(split) && split > 0 && split < TEST_IMAGES)) throw new Error(`--split needs an integer in 1…${TEST_IMAGES - 1}, got ${args[at + 1]}`);
  const root = path.resolve('.tmp/bench-quality');
  fs.mkdirSync(root, { recursive: true });
  const SEARCH = path.join(root, `search-${TEST_IMAGES - split}.dataset.json`);
  const HOLDOUT = path.join(root, `holdout-${split}.dataset.json`);
  fs.writeFileSync(SEARCH, fmnist(split, TEST_IMAGES - split));
  fs.writeFileSync(HOLDOUT, fmnist(0, split));
  console.log(`search: test images ${split}–${TEST_IMAGES - 1}; held-out: 0–${split - 1}`);
  const techniques = Object.entries(TECHNIQUES).filter(([t]) => !args.includes('--share-only') || t === 'share');
  console.log('| model | techniques | rule | ratio | archive ratio | search loss | held-out loss | seconds |');
  console.log('|---|---|---|---:|---:|---:|---:|---:|');
  for (const m of models.length ? models : FIXTURES) {
    const model = path.join('test/fixtures', `${m}.onnx`);
    const orig = fs.statSync(model).size;
    for (const [t, { list, target }] of techniques) {
      // the archive-target run resumes the study of the `all` run (same levels)
      const dir = path.join(root, `${m}-${list === 'share' ? 'share' : 'all'}`);
      if (target === 'onnx') fs.rmSync(dir, { recursive: true, force: true });
      for (const [rule, extra] of [['80 %', []], ['point', ['--confidence', '0.5']]] as const) {
        const t0 = performance.now();
        const r = spawnSync(process.execPath, ['dist/cli.js', 'compress', model, '--data', SEARCH, '--holdout', HOLDOUT, '--max-loss', '0.5', '--techniques', list, '--target', target, '--out', dir, ...extra, '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
        const secs = (performance.now() - t0) / 1000;
        if (r.status !== 0) {
          console.log(`| ${m} | ${t} | ${rule} | failed (exit ${r.status}): ${r.stderr.trim().split('\n').pop()} |`);
          continue;
        }
        const c = JSON.parse(r.stdout).chosen;
        const pt = (x: number) => (x * 100).toFixed(2);
        console.log(`| ${m} | ${t} | ${rule} | ${c.ratio.toFixed(2)}× | ${c.archiveBytes ? (orig / c.archiveBytes).toFixed(2) + '×' : '—'} | ${pt(c.loss)} | ${c.holdout ? pt(c.holdout.loss) : '—'} | ${secs.toFixed(0)} |`);
      }
    }
  }
}

/** The registered benchmark. */
export const qualityBench: Bench = {
  name: 'quality',
  summary: 'compress --max-loss 0.5 on the fixtures (share / all / all for the archive, 80 % bound / point estimate): ratio, archive ratio, held-out loss',
  run,
};
