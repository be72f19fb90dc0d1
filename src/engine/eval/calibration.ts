/**
 * Calibration statistics for calibrated rounding (`compress/gptq.ts`): for each weight, the second
 * moments H = Σ x·xᵀ of the input vectors its layer multiplies it with — for a Conv, the im2col
 * patches (per group), for Gemm/MatMul the rows of the activation. One pass over the first
 * `samples` samples of the data, with every needed activation added as an extra graph output.
 *
 * Supported consumers: Conv with 1 or 2 spatial dimensions and explicit pads (auto_pad NOTSET or
 * VALID), Gemm with transA = 0 (B = the weight), MatMul with the weight as 2-D right operand.
 * Other weights get no statistics (they are compressed plainly).
 */
import { throwIfAborted } from '../errors';
import type { LayerHessian } from '../compress/gptq';
import { encodeModel, type NodeProto, type OnnxModel, type WeightInfo } from '../onnx';
import { withExtraOutputs } from './weightsAsInputs';
import { createSession, effectiveBatchSize, sessionInputs, toOrtFeeds } from './session';
import type { Dataset } from './types';
import { openDataset } from './dataset';
import type { DatasetSpec } from './datasetSpec';
import type { SessionOptions } from './session';

/** Options of {@link collectHessians}. */
export interface CalibrationOptions {
  /** Samples used (from the start of the data). Default 256. */
  samples: number;
  /** Convolutions: output positions per sample used (spread evenly over the feature map). Default 32. */
  positions: number;
  /**
   * Layers with more inputs per output channel than this get no statistics (plain rounding): the
   * cost grows with its square (collection) and cube (rounding). Default 1152 (3×3×128).
   */
  maxDim: number;
  batchSize: number;
  signal: AbortSignal | undefined;
  session: Partial<SessionOptions>;
  /** After each batch: samples done of the total. */
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** How one weight meets its input. */
export type CalibrationGeometry = Geometry;
type Geometry =
  | { kind: 'conv'; input: string; groups: number; cg: number; k: number[]; strides: number[]; pads: number[]; dilations: number[]; rows: number }
  | { kind: 'dense'; input: string; transposed: boolean; dim: number; rows: number };

function ints(n: NodeProto, name: string, fallback: number[]): number[] {
  const a = n.attribute.find((x) => x.name === name);
  return a && a.ints.length ? a.ints.map(Number) : fallback;
}
function int(n: NodeProto, name: string, fallback: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : fallback;
}
function str(n: NodeProto, name: string): string {
  const a = n.attribute.find((x) => x.name === name);
  return a?.s ? new TextDecoder().decode(a.s) : '';
}

/** The geometry of `w`'s single consumer, or why it is not supported. */
export function calibrationGeometry(model: OnnxModel, w: WeightInfo): Geometry | string {
  const users = model.graph.node.filter((n) => n.input.includes(w.name));
  if (users.length !== 1) return `${users.length} consumers`;
  const n = users[0]!;
  const s = w.shape;
  if (n.opType === 'Conv' && n.input[1] === w.name && (s.length === 3 || s.length === 4)) {
    const sp = s.length - 2;
    const autoPad = str(n, 'auto_pad');
    if (autoPad !== '' && autoPad !== 'NOTSET' && autoPad !== 'VALID') return `auto_pad ${autoPad}`;
    const groups = int(n, 'group', 1);
    return {
      kind: 'conv',
      input: n.input[0]!,
      groups,
      cg: s[1]!,
      k: s.slice(2),
      strides: ints(n, 'strides', Array(sp).fill(1)),
      pads: autoPad === 'VALID' ? Array(2 * sp).fill(0) : ints(n, 'pads', Array(2 * sp).fill(0)),
      dilations: ints(n, 'dilations', Array(sp).fill(1)),
      rows: s[0]!,
    };
  }
  if (n.opType === 'Gemm' && n.input[1] === w.name && s.length === 2 && int(n, 'transA', 0) === 0) {
    const transB = int(n, 'transB', 0) === 1;
    return { kind: 'dense', input: n.input[0]!, transposed: !transB, dim: transB ? s[1]! : s[0]!, rows: transB ? s[0]! : s[1]! };
  }
  if (n.opType === 'MatMul' && n.input[1] === w.name && s.length === 2) {
    return { kind: 'dense', input: n.input[0]!, transposed: true, dim: s[0]!, rows: s[1]! };
  }
  return `${n.opType} input ${n.input.indexOf(w.name)}`;
}

/** Adds Σ p·pᵀ (upper triangle) of the patch `p` (length d) into `h`. */
function rank1(h: Float64Array, p: Float64Array, d: number): void {
  for (let a = 0; a < d; a++) {
    const pa = p[a]!;
    if (pa === 0) continue;
    const row = a * d;
    for (let b = a; b < d; b++) h[row + b]! += pa * p[b]!;
  }
}

/**
 * Visits the im2col patches of a batch `xs[0]` [n, C, …spatial] (and, at the same positions, of the
 * other tensors of `xs`, same shape): per sample at most `maxPositions` output positions, spread
 * evenly and shifted per sample; `visit(group, patches)` gets one patch (length Cg·kh·kw) per tensor.
 * Returns the number of positions visited per group.
 */
function convPatches(g: Extract<Geometry, { kind: 'conv' }>, xs: readonly Float32Array[], dims: readonly number[], maxPositions: number, visit: (group: number, patches: readonly Float64Array[]) => void): number {
  const [n, C] = dims as [number, number];
  const is2d = g.k.length === 2;
  const H = dims[2]!;
  const W = is2d ? dims[3]! : 1;
  const [kh, kw] = is2d ? [g.k[0]!, g.k[1]!] : [g.k[0]!, 1];
  const [sh, sw] = is2d ? [g.strides[0]!, g.strides[1]!] : [g.strides[0]!, 1];
  const [dh, dw] = is2d ? [g.dilations[0]!, g.dilations[1]!] : [g.dilations[0]!, 1];
  const [ph, pw] = is2d ? [g.pads[0]!, g.pads[1]!] : [g.pads[0]!, 0];
  const [ph1, pw1] = is2d ? [g.pads[2]!, g.pads[3]!] : [g.pads[1]!, 0];
  const oh = Math.floor((H + ph + ph1 - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((W + pw + pw1 - dw * (kw - 1) - 1) / sw) + 1;
  const d = g.cg * kh * kw;
  const ps = xs.map(() => new Float64Array(d));
  const plane = H * W;
  const positions = oh * ow;
  const take = Math.min(positions, maxPositions);
  let used = 0;
  for (let s = 0; s < n; s++) {
    const shift = ((s + 1) * 2654435761) % positions;
    for (let grp = 0; grp < g.groups; grp++) {
      const base = (s * C + grp * g.cg) * plane;
      for (let pi = 0; pi < take; pi++) {
        const pos = take === positions ? pi : (Math.floor(((pi + 0.5) * positions) / take) + shift) % positions;
        const oy = Math.floor(pos / ow);
        const ox = pos - oy * ow;
        for (let x = 0; x < xs.length; x++) {
          const src = xs[x]!;
          const p = ps[x]!;
          let t = 0;
          for (let c = 0; c < g.cg; c++) {
            const cb = base + c * plane;
            for (let i = 0; i < kh; i++) {
              const y = oy * sh - ph + i * dh;
              for (let j = 0; j < kw; j++, t++) {
                const xx = ox * sw - pw + j * dw;
                p[t] = y >= 0 && y < H && xx >= 0 && xx < W ? src[cb + y * W + xx]! : 0;
              }
            }
          }
        }
        visit(grp, ps);
      }
    }
    used += take;
  }
  return used;
}

/** Accumulates the im2col patches of a batch `x` [n, C, …spatial] into the per-group matrices. */
function accumulateConv(g: Extract<Geometry, { kind: 'conv' }>, hs: Float64Array[], x: Float32Array, dims: readonly number[], maxPositions: number): number {
  const d = hs[0] ? Math.round(Math.sqrt(hs[0].length)) : 0;
  return convPatches(g, [x], dims, maxPositions, (grp, [p]) => rank1(hs[grp]!, p!, d));
}

function accumulateDense(g: Extract<Geometry, { kind: 'dense' }>, h: Float64Array, x: Float32Array): number {
  const d = g.dim;
  const m = x.length / d;
  const p = new Float64Array(d);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < d; j++) p[j] = x[r * d + j]!;
    rank1(h, p, d);
  }
  return m;
}

/**
 * Input second moments of every weight in `weights` whose consumer is supported (others are
 * absent from the result), over the first `samples` samples of `data` (an open dataset, or a
 * description opened for the model's inputs).
 */
export async function collectHessians(
  model: OnnxModel,
  weights: readonly WeightInfo[],
  data: Dataset | DatasetSpec,
  options: Partial<CalibrationOptions> = {},
): Promise<Map<string, LayerHessian>> {
  const o: CalibrationOptions = { samples: 256, positions: 32, maxDim: 1152, batchSize: 32, signal: undefined, session: {}, onProgress: undefined, ...options };
  const geo = new Map<string, Geometry>();
  for (const w of weights) {
    const g = calibrationGeometry(model, w);
    if (typeof g === 'string') continue;
    const d = g.kind === 'conv' ? g.cg * g.k.reduce((a, b) => a * b, 1) : g.dim;
    if (d <= o.maxDim) geo.set(w.name, g);
  }
  const out = new Map<string, LayerHessian>();
  if (geo.size === 0) return out;
  const acc = new Map<string, { hs: Float64Array[]; count: number; d: number }>();
  for (const [name, g] of geo) {
    const d = g.kind === 'conv' ? g.cg * g.k.reduce((a, b) => a * b, 1) : g.dim;
    const n = g.kind === 'conv' ? g.groups : 1;
    acc.set(name, { hs: Array.from({ length: n }, () => new Float64Array(d * d)), count: 0, d });
  }
  const inputs = [...new Set([...geo.values()].map((g) => g.input))];
  const graphInputs = new Set(model.graph.input.map((v) => v.name));
  const extra = inputs.filter((i) => !graphInputs.has(i));
  const bytes = withExtraOutputs(encodeModel(model.proto), extra);
  const session = await createSession(bytes, o.session, model.source);
  try {
    const dataset = 'batches' in data ? data : await openDataset(data, sessionInputs(session), { limit: o.samples });
    const total = Math.min(o.samples, dataset.meta.count);
    const bs = effectiveBatchSize(sessionInputs(session), o.batchSize);
    let done = 0;
    for await (const batch of dataset.batches(bs, o.signal ? { signal: o.signal } : {})) {
      throwIfAborted(o.signal);
      if (batch.count < bs && sessionInputs(session).some((i) => i.dims[0] === bs)) break; // a fixed batch size: skip the short tail
      const result = extra.length ? await session.run(toOrtFeeds(batch.feeds), extra) : {};
      const take = Math.min(batch.count, total - done);
      for (const [name, g] of geo) {
        const a = acc.get(name)!;
        const t = result[g.input];
        const src = t ? { data: t.data as Float32Array, dims: t.dims } : batch.feeds[g.input];
        if (!src || !(src.data instanceof Float32Array)) continue;
        const per = src.data.length / src.dims[0]!;
        const data = src.data.subarray(0, take * per);
        const dims = [take, ...src.dims.slice(1)];
        a.count += g.kind === 'conv' ? accumulateConv(g, a.hs, data, dims, o.positions) : accumulateDense(g, a.hs[0]!, data);
      }
      for (const t of Object.values(result)) t.dispose();
      done += take;
      o.onProgress?.(done, total);
      if (done >= total) break;
    }
  } finally {
    await session.release();
  }
  for (const [name, g] of geo) {
    const a = acc.get(name)!;
    if (a.count === 0) continue;
    for (const h of a.hs) for (let i = 0; i < a.d; i++) for (let j = 0; j < i; j++) h[i * a.d + j] = h[j * a.d + i]!;
    out.set(name, {
      dim: a.d,
      rowsPerGroup: g.rows / (g.kind === 'conv' ? g.groups : 1),
      groups: a.hs,
      transposed: g.kind === 'dense' && g.transposed,
      count: a.count,
    });
  }
  return out;
}

/**
 * Paired input statistics of one layer for the asymmetric calibration of a compressed model
 * (`compress/gptq.ts` {@link compensatedWeights}): with x the layer's input in the original model
 * and q the same input in the compressed one (earlier layers compressed), per group
 * Hq = Σ q·qᵀ (symmetric) and C = Σ q·xᵀ (row index from q).
 */
export interface PairedStatistics {
  readonly geometry: Geometry;
  readonly d: number;
  readonly hq: Float64Array[];
  readonly cross: Float64Array[];
  count: number;
}

/** Empty {@link PairedStatistics} for a layer of geometry `g`, or undefined past `maxDim` inputs per output channel (as {@link collectHessians}). */
export function pairedStatistics(g: Geometry, maxDim = 1152): PairedStatistics | undefined {
  const d = g.kind === 'conv' ? g.cg * g.k.reduce((a, b) => a * b, 1) : g.dim;
  if (d > maxDim) return undefined;
  const n = g.kind === 'conv' ? g.groups : 1;
  return { geometry: g, d, hq: Array.from({ length: n }, () => new Float64Array(d * d)), cross: Array.from({ length: n }, () => new Float64Array(d * d)), count: 0 };
}

/** Adds one batch: `x` the original input, `q` the compressed model's (same dims). */
export function accumulatePaired(s: PairedStatistics, q: Float32Array, x: Float32Array, dims: readonly number[], maxPositions = 32): void {
  const d = s.d;
  const add = (grp: number, pq: Float64Array, px: Float64Array): void => {
    rank1(s.hq[grp]!, pq, d);
    const c = s.cross[grp]!;
    for (let a = 0; a < d; a++) {
      const qa = pq[a]!;
      if (qa === 0) continue;
      const row = a * d;
      for (let b = 0; b < d; b++) c[row + b]! += qa * px[b]!;
    }
  };
  const g = s.geometry;
  if (g.kind === 'conv') {
    s.count += convPatches(g, [q, x], dims, maxPositions, (grp, [pq, px]) => add(grp, pq!, px!));
    return;
  }
  const m = x.length / d;
  const pq = new Float64Array(d);
  const px = new Float64Array(d);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < d; j++) {
      pq[j] = q[r * d + j]!;
      px[j] = x[r * d + j]!;
    }
    add(0, pq, px);
  }
  s.count += m;
}

/** The {@link LayerHessian} of the compressed inputs (Hq, made symmetric) of finished paired statistics. */
export function pairedHessian(s: PairedStatistics): LayerHessian {
  const d = s.d;
  for (const h of s.hq) for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) h[i * d + j] = h[j * d + i]!;
  const g = s.geometry;
  return { dim: d, rowsPerGroup: g.rows / (g.kind === 'conv' ? g.groups : 1), groups: s.hq, transposed: g.kind === 'dense' && g.transposed, count: s.count };
}
