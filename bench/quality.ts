/**
 * Quality benchmark (issue #6 §5): `compress --max-loss 0.5` on each fixture with sharing alone and
 * with every technique, under both choice rules (the 80 % upper bound, the default, and the point
 * estimate, `--confidence 0.5`), through the real CLI. Search data: 8000 Fashion-MNIST test images
 * (2000–9999), held-out data the first 2000 (`bench/data/*.dataset.json`, over Debian's
 * `dataset-fashion-mnist` IDX files). Prints ratio (original file ÷ compressed ONNX), archive ratio,
 * search and held-out loss per run. Results go to `.tmp/bench-quality/` (the point-estimate run
 * resumes the 80 % run's sensitivity study). Never run by tests.
 *
 *   node dist/bench.js quality [lenet5|resnet8|mobilenet ...]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Bench } from './main';

const SEARCH = 'bench/data/fmnist-search-8000.dataset.json';
const HOLDOUT = 'bench/data/fmnist-holdout-2000.dataset.json';
const FIXTURES = ['lenet5', 'resnet8', 'mobilenet'];
const TECHNIQUES: Record<string, string> = { share: 'share', all: 'share,prune,quant,float,lowrank' };

async function run(args: string[]): Promise<void> {
  if (!fs.existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz')) {
    console.log('skipped: needs Debian\'s dataset-fashion-mnist (apt-get install dataset-fashion-mnist)');
    return;
  }
  const models = FIXTURES.filter((m) => args.includes(m));
  const root = path.resolve('.tmp/bench-quality');
  console.log('| model | techniques | rule | ratio | archive ratio | search loss | held-out loss | seconds |');
  console.log('|---|---|---|---:|---:|---:|---:|---:|');
  for (const m of models.length ? models : FIXTURES) {
    const model = path.join('test/fixtures', `${m}.onnx`);
    const orig = fs.statSync(model).size;
    for (const [t, list] of Object.entries(TECHNIQUES)) {
      const dir = path.join(root, `${m}-${t}`);
      fs.rmSync(dir, { recursive: true, force: true });
      for (const [rule, extra] of [['80 %', []], ['point', ['--confidence', '0.5']]] as const) {
        const t0 = performance.now();
        const r = spawnSync(process.execPath, ['dist/cli.js', 'compress', model, '--data', SEARCH, '--holdout', HOLDOUT, '--max-loss', '0.5', '--techniques', list, '--out', dir, ...extra, '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
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
  summary: 'compress --max-loss 0.5 on the fixtures (share / all, 80 % bound / point estimate): ratio, archive ratio, held-out loss',
  run,
};
