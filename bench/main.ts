/**
 * `npm run bench`: runs every benchmark module and prints its report. Benchmarks are never part of
 * the tests. `node dist/bench.js [name...]` runs only the named ones; `--list` lists them.
 * Child processes (for per-process peak RSS) re-enter here with `--child <name> ...`.
 */
import { archiveBench } from './archive';
import { calibrationBench } from './calibration';
import { compressBench } from './compress';
import { evalBench } from './eval';
import { exploreBench } from './explore';
import { memoryBench } from './memory';
import { onnxIoBench, onnxIoChild } from './onnxio';
import { qualityBench } from './quality';

/** A benchmark: `run` prints its own report. */
export interface Bench {
  name: string;
  summary: string;
  run: (args: string[]) => Promise<void>;
}

/** Registered benchmarks, in run order. Add new modules here. */
const BENCHES: Bench[] = [onnxIoBench, compressBench, evalBench, archiveBench, calibrationBench, exploreBench, qualityBench, memoryBench];
const CHILDREN: Record<string, (args: string[]) => Promise<void>> = { onnxio: onnxIoChild };

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--child') {
    await CHILDREN[argv[1]!]!(argv.slice(2));
    return;
  }
  if (argv.includes('--list')) {
    for (const b of BENCHES) console.log(`${b.name.padEnd(12)} ${b.summary}`);
    return;
  }
  const selected = argv.length ? BENCHES.filter((b) => argv.includes(b.name)) : BENCHES;
  for (const b of selected) {
    console.log(`\n## ${b.name}: ${b.summary}\n`);
    const t0 = performance.now();
    await b.run(argv);
    console.log(`(${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
}

void main(process.argv.slice(2)).catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
