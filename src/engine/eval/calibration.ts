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

/** Accumulates the im2col patches of a batch `x` [n, C, …spatial] into the per-group matrices. */
function accumulateConv(g: Extract<Geometry, { kind: 'conv' }>, hs: Float64Array[], x: Float32Array, dims: readonly number[], maxPositions: number): number {
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
  const p = new Float64Array(d);
  const plane = H * W;
  const positions = oh * ow;
  const take = Math.min(positions, maxPositions);
  let used = 0;
  for (let s = 0; s < n; s++) {
    // at most `maxPositions` output positions per sample, spread evenly, shifted per sample
    const shift = ((s + 1) * 2654435761) % positions;
    for (let grp = 0; grp < g.groups; grp++) {
      const h = hs[grp]!;
      const base = (s * C + grp * g.cg) * plane;
      for (let pi = 0; pi < take; pi++) {
        const pos = take === positions ? pi : (Math.floor(((pi + 0.5) * positions) / take) + shift) % positions;
        const oy = Math.floor(pos / ow);
        const ox = pos - oy * ow;
        {
          let t = 0;
          for (let c = 0; c < g.cg; c++) {
            const cb = base + c * plane;
            for (let i = 0; i < kh; i++) {
              const y = oy * sh - ph + i * dh;
              for (let j = 0; j < kw; j++, t++) {
                const xx = ox * sw - pw + j * dw;
                p[t] = y >= 0 && y < H && xx >= 0 && xx < W ? x[cb + y * W + xx]! : 0;
              }
            }
          }
          rank1(h, p, d);
        }
      }
    }
    used += take;
  }
  return used;
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
