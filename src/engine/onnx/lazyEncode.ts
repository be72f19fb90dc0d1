/**
 * Encoding without copying tensor payloads. protobuf-es's `toBinary` writes into one growing
 * buffer, so every large `raw_data` is copied as the buffer doubles and again when each enclosing
 * message's length prefix is widened (tensor, graph, model). For a 200 MB model that is several
 * copies and a 512 MB buffer. Here messages on the path to large payloads are encoded as a list of
 * chunks: the payloads stay views of the loaded bytes, everything else is encoded by protobuf-es.
 *
 * The output is byte-identical to `toBinary(..., { writeUnknownFields: true })`: fields in field
 * number order, unknown fields last (checked on ONNX's ~1000 test models).
 */
import { toBinary, type DescField, type DescMessage, type Message } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** Encoded bytes as a list of chunks, with their total length. */
export interface Chunks {
  parts: Uint8Array[];
  length: number;
}

/** Message types that can (transitively) hold tensor payloads. */
const CONTAINERS = new Set([
  'onnx.ModelProto',
  'onnx.GraphProto',
  'onnx.NodeProto',
  'onnx.AttributeProto',
  'onnx.TensorProto',
  'onnx.SparseTensorProto',
  'onnx.TrainingInfoProto',
  'onnx.FunctionProto',
]);

type AnyMessage = Message & Record<string, unknown> & { $unknown?: Array<{ no: number; wireType: WireType; data: Uint8Array }> };

/**
 * Encodes `msg` as chunks; `bytes` fields of at least `minBytes` bytes are referenced, not copied.
 */
export function encodeChunks(schema: DescMessage, msg: Message, minBytes: number): Chunks {
  const heavy = new WeakMap<object, boolean>();
  const out: Chunks = { parts: [], length: 0 };
  encodeInto(schema, msg as AnyMessage, minBytes, heavy, out);
  return out;
}

function push(out: Chunks, b: Uint8Array): void {
  if (b.length === 0) return;
  out.parts.push(b);
  out.length += b.length;
}

function varint(n: number): Uint8Array {
  const w = new BinaryWriter();
  if (n <= 0xffffffff) w.uint32(n);
  else w.uint64(n);
  return w.finish();
}

function isHeavyBytes(f: DescField, v: unknown, minBytes: number): boolean {
  return f.fieldKind === 'scalar' && v instanceof Uint8Array && v.length >= minBytes && v.length > 0;
}

function isHeavy(schema: DescMessage, msg: AnyMessage, minBytes: number, memo: WeakMap<object, boolean>): boolean {
  if (!CONTAINERS.has(schema.typeName)) return false;
  const known = memo.get(msg);
  if (known !== undefined) return known;
  let h = false;
  for (const f of schema.fields) {
    const v = msg[f.localName];
    if (isHeavyBytes(f, v, minBytes)) h = true;
    else if (f.fieldKind === 'message' && v !== undefined && Object.hasOwn(msg, f.localName)) h = isHeavy(f.message, v as AnyMessage, minBytes, memo);
    else if (f.fieldKind === 'list' && f.listKind === 'message') h = (v as AnyMessage[]).some((x) => isHeavy(f.message, x, minBytes, memo));
    if (h) break;
  }
  memo.set(msg, h);
  return h;
}

function encodeInto(schema: DescMessage, msg: AnyMessage, minBytes: number, memo: WeakMap<object, boolean>, out: Chunks): void {
  const heavyFields = schema.fields.filter((f) => {
    const v = msg[f.localName];
    if (isHeavyBytes(f, v, minBytes)) return true;
    if (f.fieldKind === 'message') return v !== undefined && Object.hasOwn(msg, f.localName) && isHeavy(f.message, v as AnyMessage, minBytes, memo);
    if (f.fieldKind === 'list' && f.listKind === 'message') return (v as AnyMessage[]).some((x) => isHeavy(f.message, x, minBytes, memo));
    return false;
  });
  if (heavyFields.length === 0) {
    push(out, toBinary(schema, msg, { writeUnknownFields: true }));
    return;
  }
  // Encode everything but the heavy fields and the unknown fields, then splice the heavy fields in
  // at their field-number position and append the unknown fields, as toBinary orders them.
  const rest = Object.assign(Object.create(Object.getPrototypeOf(msg)) as AnyMessage, msg);
  delete rest.$unknown;
  for (const f of heavyFields) {
    if (f.fieldKind === 'list') rest[f.localName] = [];
    else delete rest[f.localName];
  }
  const base = toBinary(schema, rest, { writeUnknownFields: false });
  const starts = fieldStarts(base);
  heavyFields.sort((a, b) => a.number - b.number);
  let cursor = 0;
  for (const f of heavyFields) {
    const at = starts.find((s) => s.no > f.number)?.start ?? base.length;
    if (at > cursor) push(out, base.subarray(cursor, at));
    cursor = Math.max(cursor, at);
    const values = f.fieldKind === 'list' ? (msg[f.localName] as AnyMessage[]) : [msg[f.localName]];
    for (const v of values) {
      push(out, varint(((f.number << 3) | WireType.LengthDelimited) >>> 0));
      if (v instanceof Uint8Array) {
        push(out, varint(v.length));
        push(out, v);
      } else {
        const child: Chunks = { parts: [], length: 0 };
        encodeInto((f as DescField & { message: DescMessage }).message, v as AnyMessage, minBytes, memo, child);
        push(out, varint(child.length));
        for (const p of child.parts) push(out, p);
      }
    }
  }
  if (cursor < base.length) push(out, base.subarray(cursor));
  for (const u of msg.$unknown ?? []) {
    push(out, varint(((u.no << 3) | u.wireType) >>> 0));
    push(out, u.data);
  }
}

/** Field numbers and start offsets of the top-level fields of an encoded message. */
function fieldStarts(bytes: Uint8Array): Array<{ no: number; start: number }> {
  const r = new BinaryReader(bytes);
  const out: Array<{ no: number; start: number }> = [];
  while (r.pos < r.len) {
    const start = r.pos;
    const [no, wt] = r.tag();
    r.skip(wt, no);
    out.push({ no, start });
  }
  return out;
}

/** Concatenates chunks into one buffer of exactly the right size. */
export function joinChunks(c: Chunks): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(c.length);
  let o = 0;
  for (const p of c.parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
