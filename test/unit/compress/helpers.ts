import { gaussian, mulberry32 } from '../../../src/engine/util/random';
import type { WeightRole, WeightTensor } from '../../../src/engine/compress/types';

/** Seeded "trained-like" weights: a Laplacian/Gaussian mix scaled like a conv layer. */
export function trainedLike(n: number, seed: number, scale = 0.05): Float32Array {
  const rand = mulberry32(seed);
  const g = gaussian(rand);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const lap = -Math.sign(rand() - 0.5) * Math.log(1 - rand()) * 0.7;
    out[i] = scale * (rand() < 0.6 ? lap : g());
  }
  return out;
}

/** Small integers in [-r, r] (many duplicates), seeded. */
export function smallInts(n: number, r: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => Math.floor(rand() * (2 * r + 1)) - r);
}

export function tensor(
  data: Float32Array,
  shape: readonly number[] = [data.length],
  role: WeightRole = 'other',
  channelAxis = 0,
): WeightTensor {
  return { data, shape, role, channelAxis, name: 'w' };
}

/** Asserts `f` throws a CompressError with this code and a message containing `part`. */
export function expectError(f: () => unknown, code: string, part?: string | RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof Error)) throw new Error(`expected ${code}, nothing was thrown`);
  const c = (caught as { code?: string }).code;
  if (c !== code) throw new Error(`expected ${code}, got ${String(c)}: ${caught.message}`);
  if (part !== undefined) {
    const ok = typeof part === 'string' ? caught.message.includes(part) : part.test(caught.message);
    if (!ok) throw new Error(`message "${caught.message}" does not match ${String(part)}`);
  }
}

/** Brute-force optimal SSE of 1-D k-means: every split of the sorted values into k runs. */
export function bruteForceKmeans(values: ArrayLike<number>, k: number): number {
  const s = Array.from(values).sort((a, b) => a - b);
  const n = s.length;
  const kk = Math.min(k, n);
  const cost = (a: number, b: number): number => {
    let m = 0;
    for (let i = a; i < b; i++) m += s[i]!;
    m /= b - a;
    let c = 0;
    for (let i = a; i < b; i++) c += (s[i]! - m) ** 2;
    return c;
  };
  let best = Infinity;
  const rec = (start: number, left: number, acc: number): void => {
    if (left === 1) {
      best = Math.min(best, acc + cost(start, n));
      return;
    }
    for (let end = start + 1; end <= n - left + 1; end++)
      rec(end, left - 1, acc + cost(start, end));
  };
  rec(0, kk, 0);
  return best;
}
