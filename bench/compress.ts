/**
 * Compression benchmark: every technique on one trained-like 512×512×3×3 conv weight (2.36 M
 * weights), and a weight-sharing sweep k ∈ {2, 4, 8, 16, 32, 64, 256} timed against one
 * `Float32Array.prototype.sort` of the same tensor in the same run (target: sweep ≤ 3 × sort).
 *
 * Run: `npm run bench` (when registered in `bench/main.ts`), or directly `npx tsx bench/compress.ts`.
 */
import { compressTensor, shareSweep } from '../src/engine/compress';
import { clearLowRankCache, lowRankDecomposition } from '../src/engine/compress/lowRank';
import type { CompressedTensor, TechniqueSpec, WeightTensor } from '../src/engine/compress';
import { gaussian, mulberry32 } from '../src/engine/util/random';

/** Same shape as `Bench` in `bench/main.ts` (kept structural to avoid importing the runner). */
export interface CompressBench {
  name: string;
  summary: string;
  run: (args: string[]) => Promise<void>;
}

const SHAPE = [512, 512, 3, 3] as const;
const SWEEP_KS = [2, 4, 8, 16, 32, 64, 256];

/**
 * A seeded "trained-like" conv weight: per output channel a scale drawn log-normally, weights a
 * 60/40 mix of Laplacian and Gaussian samples (heavy tails, a peak at 0, like trained filters).
 */
export function trainedLikeConv(seed = 2024): WeightTensor {
  const rand = mulberry32(seed);
  const g = gaussian(rand);
  const [o, i, kh, kw] = SHAPE;
  const per = i * kh * kw;
  const data = new Float32Array(o * per);
  for (let c = 0; c < o; c++) {
    const scale = 0.02 * Math.exp(0.3 * g());
    for (let j = 0; j < per; j++) {
      const lap = (rand() < 0.5 ? -1 : 1) * -Math.log(1 - rand()) * 0.7;
      data[c * per + j] = scale * (rand() < 0.6 ? lap : g());
    }
  }
  return { data, shape: SHAPE, role: 'conv', channelAxis: 0, name: 'bench.conv' };
}

const gc = (globalThis as { gc?: () => void }).gc;

function time<T>(f: () => T): { ms: number; value: T } {
  gc?.();
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function label(spec: TechniqueSpec): string {
  switch (spec.technique) {
    case 'share':
      return `share k=${spec.k}${spec.perChannel ? ' per-channel' : ''}`;
    case 'prune':
      return spec.pattern === 'n:m'
        ? `prune ${spec.n ?? 2}:${spec.m ?? 4}`
        : `prune ${spec.pattern} ${spec.sparsity}${spec.norm ? ' ' + spec.norm : ''}`;
    case 'quant':
      return `quant ${spec.bits}b ${spec.symmetric ? 'sym' : 'asym'} ${spec.perChannel ? 'per-ch' : 'per-tensor'} ${spec.clip}`;
    case 'float':
      return `float ${spec.format}${spec.mantissaBits !== undefined ? ` m=${spec.mantissaBits}` : ''}`;
    case 'lowrank':
      return `lowrank ${spec.rank !== undefined ? `rank=${spec.rank}` : `energy=${spec.energy}`}`;
    case 'prune+share':
      return `${label(spec.prune)} + share k=${spec.share.k}`;
    case 'prune+quant':
      return `${label(spec.prune)} + quant ${spec.quant.bits}b`;
  }
}

const SPECS: TechniqueSpec[] = [
  { technique: 'share', k: 16, perChannel: false },
  { technique: 'share', k: 16, perChannel: true },
  { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 },
  { technique: 'prune', pattern: 'n:m', sparsity: 0, n: 2, m: 4 },
  { technique: 'prune', pattern: 'channel', sparsity: 0.25, norm: 'l1' },
  { technique: 'quant', bits: 8, symmetric: true, perChannel: true, clip: 'minmax' },
  { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'mse' },
  { technique: 'quant', bits: 4, symmetric: false, perChannel: false, clip: 'mse' },
  { technique: 'float', format: 'fp16' },
  { technique: 'float', format: 'bf16' },
  { technique: 'float', format: 'bf16m', mantissaBits: 3 },
  { technique: 'float', format: 'fp8e4m3' },
  { technique: 'float', format: 'fp8e5m2' },
  { technique: 'lowrank', rank: 64 },
  { technique: 'lowrank', energy: 0.9 },
  {
    technique: 'prune+share',
    prune: { technique: 'prune', pattern: 'unstructured', sparsity: 0.5 },
    share: { technique: 'share', k: 16, perChannel: false },
  },
  {
    technique: 'prune+quant',
    prune: { technique: 'prune', pattern: 'n:m', sparsity: 0 },
    quant: { technique: 'quant', bits: 4, symmetric: true, perChannel: true, clip: 'minmax' },
  },
];

function row(name: string, ms: number, r: CompressedTensor, n: number, energy: number): string {
  const bpw = (r.bits.total / n).toFixed(3);
  const ebpw = (r.bits.entropyTotal / n).toFixed(3);
  const rel = (r.sse / energy).toExponential(2);
  return `| ${name.padEnd(40)} | ${ms.toFixed(0).padStart(7)} | ${bpw.padStart(7)} | ${ebpw.padStart(7)} | ${rel.padStart(9)} |`;
}

/**
 * The default low-rank ladder (energy 0.999…0.8, as `analyze` measures it): every level decomposing
 * afresh (cache cleared) vs one cached decomposition for all, interleaved in the same run.
 */
function lowRankLadder(t: WeightTensor): void {
  const energies = [0.999, 0.99, 0.95, 0.9, 0.8];
  const ladder = (fresh: boolean): number =>
    energies.reduce((ms, energy) => {
      if (fresh) clearLowRankCache();
      return ms + time(() => compressTensor(t, { technique: 'lowrank', energy })).ms;
    }, 0);
  clearLowRankCache();
  const fresh = ladder(true);
  clearLowRankCache();
  const once = ladder(false);
  clearLowRankCache();
  const decompose = time(() => lowRankDecomposition(t)).ms;
  clearLowRankCache();
  console.log(
    `Low-rank ladder (energy ${energies.join(', ')}): ${fresh.toFixed(0)} ms decomposing per level, ${once.toFixed(0)} ms with one cached decomposition (${(fresh / once).toFixed(2)}×); the decomposition alone ${decompose.toFixed(0)} ms\n`,
  );
}

/** Runs the benchmark and prints Markdown tables. `--quick` skips the technique table. */
export async function runCompressBench(args: string[] = []): Promise<void> {
  const t = trainedLikeConv();
  const n = t.data.length;
  let energy = 0;
  for (const v of t.data) energy += v * v;
  console.log(`Tensor ${SHAPE.join('×')} = ${n} weights (trained-like, seed 2024)\n`);

  // Sweep vs sort, interleaved so both see the same machine load; 3 rounds.
  const sorts: number[] = [];
  const sweeps: number[] = [];
  let sweep: CompressedTensor[] = [];
  for (let round = 0; round < 3; round++) {
    sorts.push(time(() => t.data.slice().sort()).ms);
    const s = time(() => shareSweep(t, SWEEP_KS, false));
    sweeps.push(s.ms);
    sweep = s.value;
  }
  console.log('Weight-sharing sweep (per tensor, one sort + one DP shared by all k):\n');
  console.log('|   k | bits/weight | entropy bits/weight | SSE / Σw² |');
  console.log('|----:|------------:|--------------------:|----------:|');
  sweep.forEach((r, i) => {
    console.log(
      `| ${String(SWEEP_KS[i]).padStart(3)} | ${(r.bits.total / n).toFixed(4).padStart(11)} | ${(r.bits.entropyTotal / n).toFixed(4).padStart(19)} | ${(r.sse / energy).toExponential(3)} |`,
    );
  });
  const ratioMedian = median(sweeps) / median(sorts);
  console.log(
    `\nFloat32Array sort: ${sorts.map((x) => x.toFixed(0)).join(', ')} ms; sweep: ${sweeps.map((x) => x.toFixed(0)).join(', ')} ms`,
  );
  console.log(
    `sweep ÷ sort = ${ratioMedian.toFixed(2)} (medians), ${(Math.min(...sweeps) / Math.min(...sorts)).toFixed(2)} (bests); target ≤ 3 → ${ratioMedian <= 3 ? 'met' : 'NOT met'}\n`,
  );
  lowRankLadder(t);
  if (args.includes('--quick')) return;

  console.log('Every technique (one run each):\n');
  console.log(
    `| ${'technique'.padEnd(40)} | ${'ms'.padStart(7)} | ${'bits/w'.padStart(7)} | ${'ent b/w'.padStart(7)} | ${'SSE/Σw²'.padStart(9)} |`,
  );
  console.log(
    `|${'-'.repeat(42)}|${'-'.repeat(8)}:|${'-'.repeat(8)}:|${'-'.repeat(8)}:|${'-'.repeat(10)}:|`,
  );
  for (const spec of SPECS) {
    const { ms, value } = time(() => compressTensor(t, spec));
    console.log(row(label(spec), ms, value, n, energy));
  }
}

/** The benchmark entry for `bench/main.ts`'s list. */
export const compressBench: CompressBench = {
  name: 'compress',
  summary: 'every compression technique on a 512×512×3×3 weight; sharing sweep vs one sort',
  run: runCompressBench,
};

// Direct run (`npx tsx bench/compress.ts`); inside the esbuild bundle of bench/main.ts argv[1] is
// dist/bench.js, so importing this module there does not start a second run.
if (require.main === module && /compress\.ts$/.test(process.argv[1] ?? '')) {
  void runCompressBench(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
