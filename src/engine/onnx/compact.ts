/**
 * Graph compaction: the bytes of a small model's graph that are not weights. Exporters name every
 * activation and node by its module path (`/features/features.1/features.1.0/Conv_output_0`), and
 * on a 300 kB model whose weights compress 8× those names and duplicated scalar constants are a
 * third of the file. Compaction keeps what a user or a runtime addresses — graph inputs, outputs,
 * initializers (and decoded weights, which carry their initializer's name) — and
 *
 * - renames the other values (activations, and initializers the caller picks, e.g. the payloads
 *   of compressed weights) to short unique names,
 * - drops node names and doc strings (both optional in ONNX),
 * - merges `Constant` nodes with equal attributes into the first one.
 *
 * Models with subgraphs (If/Loop/Scan) only lose node names and doc strings: their bodies may read
 * outer values by name. Functions are left as they are.
 */
import { toBinary } from '@bufbuild/protobuf';
import { AttributeProtoSchema, type GraphProto } from './proto';
import type { OnnxModel } from './model';

/** What {@link compactGraph} did. */
export interface CompactResult {
  renamed: number;
  mergedConstants: number;
  /** Bytes of names and doc strings removed (approximate: UTF-16 lengths). */
  namesRemoved: number;
}

/** Short names `_0`, `_1`, …, `_a`, … (base 36) that are not in `taken`. */
function* shortNames(taken: ReadonlySet<string>): Generator<string> {
  for (let i = 0; ; i++) {
    const n = `_${i.toString(36)}`;
    if (!taken.has(n)) yield n;
  }
}

function hasSubgraphs(g: GraphProto): boolean {
  return g.node.some((n) => n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0));
}

/**
 * Compacts the main graph of `model` in place (see the module comment). `keep` names values that
 * must keep their names besides graph inputs, outputs and initializers (e.g. decoded weights).
 */
export function compactGraph(model: OnnxModel, keep: Iterable<string> = [], renameInitializer: (name: string) => boolean = () => false): CompactResult {
  const g = model.graph;
  const result: CompactResult = { renamed: 0, mergedConstants: 0, namesRemoved: 0 };
  for (const n of g.node) {
    result.namesRemoved += n.name.length + n.docString.length;
    n.name = '';
    n.docString = '';
  }
  if (hasSubgraphs(g)) return result;

  const io = new Set<string>([...g.input.map((v) => v.name), ...g.output.map((v) => v.name)]);
  const movable = g.initializer.filter((t) => !io.has(t.name) && renameInitializer(t.name));
  const fixed = new Set<string>([...keep, ...io, ...g.initializer.map((t) => t.name)]);
  for (const t of movable) fixed.delete(t.name);
  for (const s of g.sparseInitializer) if (s.values) fixed.add(s.values.name);

  // Merge equal Constant nodes (same attributes, byte for byte) into the first.
  const alias = new Map<string, string>();
  const firstOf = new Map<string, string>();
  g.node = g.node.filter((n) => {
    if (n.opType !== 'Constant' || n.domain !== '' || n.output.length !== 1 || fixed.has(n.output[0]!)) return true;
    const key = Buffer.concat(n.attribute.map((a) => toBinary(AttributeProtoSchema, a))).toString('base64');
    const first = firstOf.get(key);
    if (first === undefined) {
      firstOf.set(key, n.output[0]!);
      return true;
    }
    alias.set(n.output[0]!, first);
    result.mergedConstants++;
    return false;
  });

  // Short names for every other node output (and the initializers `renameInitializer` picked).
  const taken = new Set<string>(fixed);
  for (const n of g.node) for (const o of n.output) taken.add(o);
  for (const t of movable) taken.add(t.name);
  const names = shortNames(taken);
  const values = [...movable.map((t) => t.name), ...g.node.flatMap((n) => n.output)];
  for (const o of values) {
    if (o === '' || fixed.has(o) || alias.has(o)) continue;
    const s = names.next().value as string;
    if (s.length >= o.length) continue;
    alias.set(o, s);
    result.namesRemoved += o.length - s.length;
    result.renamed++;
  }
  if (alias.size === 0) return result;
  // Merged constants may point at a renamed first constant.
  const resolve = (x: string): string => {
    const a = alias.get(x);
    return a === undefined ? x : (alias.get(a) ?? a);
  };
  for (const n of g.node) {
    n.input = n.input.map(resolve);
    n.output = n.output.map(resolve);
  }
  for (const t of movable) t.name = resolve(t.name);
  for (const v of g.valueInfo) v.name = resolve(v.name);
  // A value_info of a merged constant now duplicates its first's: keep one.
  const seen = new Set<string>();
  g.valueInfo = g.valueInfo.filter((v) => (seen.has(v.name) ? false : (seen.add(v.name), true)));
  return result;
}
