/**
 * Seeded mutations of protobuf bytes for fuzzing: bit flips, truncation, byte runs, length-field
 * corruption, swaps of sibling fields and field-number changes. The structure-aware ones use a
 * small wire-format walker ({@link protoFields}).
 */

/** A field found by {@link protoFields}: tag at `start`, value ends at `end`; `len` locates a length varint. */
export interface WireField {
  start: number;
  end: number;
  field: number;
  wire: number;
  /** Position and byte count of the length varint (wire type 2 only). */
  len?: { at: number; bytes: number; value: number };
  /** Index of the enclosing message in the list (-1 for top level). */
  parent: number;
}

function varint(b: Uint8Array, p: number): { value: number; next: number } | undefined {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (p + i >= b.length) return undefined;
    const x = b[p + i]!;
    v += (x & 0x7f) * mul;
    mul *= 128;
    if ((x & 0x80) === 0) return { value: v, next: p + i + 1 };
  }
  return undefined;
}

/**
 * Every field of `b` parsed as a protobuf message, recursing into length-delimited fields that
 * parse as messages themselves (a heuristic: strings and packed arrays may parse too). At most
 * `limit` fields.
 */
export function protoFields(b: Uint8Array, limit = 20_000): WireField[] {
  const out: WireField[] = [];
  const walk = (from: number, to: number, parent: number, depth: number): boolean => {
    let p = from;
    const mark = out.length;
    while (p < to) {
      if (out.length >= limit) return true;
      const tag = varint(b, p);
      if (!tag || tag.next > to) return false;
      const field = Math.floor(tag.value / 8);
      const wire = tag.value & 7;
      if (field === 0) return false;
      let end: number;
      let len: WireField['len'];
      if (wire === 0) {
        const v = varint(b, tag.next);
        if (!v) return false;
        end = v.next;
      } else if (wire === 1) end = tag.next + 8;
      else if (wire === 5) end = tag.next + 4;
      else if (wire === 2) {
        const v = varint(b, tag.next);
        if (!v) return false;
        len = { at: tag.next, bytes: v.next - tag.next, value: v.value };
        end = v.next + v.value;
      } else return false;
      if (end > to) return false;
      const idx = out.length;
      out.push(len ? { start: p, end, field, wire, len, parent } : { start: p, end, field, wire, parent });
      if (len && depth < 12 && len.value > 1) {
        const before = out.length;
        if (!walk(len.at + len.bytes, end, idx, depth + 1)) out.length = before;
      }
      p = end;
    }
    return out.length > mark || from === to;
  };
  walk(0, b.length, -1, 0);
  return out;
}

function encodeVarint(v: number): number[] {
  const out: number[] = [];
  do {
    let x = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) x |= 0x80;
    out.push(x);
  } while (v > 0);
  return out;
}

/** Mutation kinds, for reporting. */
export const MUTATIONS = ['bitflip', 'truncate', 'bytes', 'length', 'swap', 'renumber', 'duplicate'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** One seeded mutation of `src` (never modified). `fields` caches {@link protoFields} of `src`. */
export function mutate(src: Uint8Array, fields: readonly WireField[], rand: () => number, kind: Mutation): Uint8Array {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  switch (kind) {
    case 'bitflip': {
      const b = Uint8Array.from(src);
      for (let i = 1 + int(8); i > 0; i--) b[int(b.length)]! ^= 1 << int(8);
      return b;
    }
    case 'truncate':
      return src.slice(0, int(src.length));
    case 'bytes': {
      const b = Uint8Array.from(src);
      const at = int(b.length);
      const fill = pick([0x00, 0xff, 0x80, int(256)]);
      for (let i = at; i < Math.min(b.length, at + 1 + int(16)); i++) b[i] = fill === 0x80 ? int(256) : fill;
      return b;
    }
    case 'length': {
      const withLen = fields.filter((f) => f.len);
      if (!withLen.length) return mutate(src, fields, rand, 'bitflip');
      const f = pick(withLen);
      const l = f.len!;
      const value = pick([0, l.value + 1, Math.max(0, l.value - 1), l.value * 2 + 7, 2 ** 31 - 1, 2 ** 32 + 5, int(src.length * 2)]);
      const enc = encodeVarint(value);
      const b = new Uint8Array(src.length - l.bytes + enc.length);
      b.set(src.subarray(0, l.at));
      b.set(enc, l.at);
      b.set(src.subarray(l.at + l.bytes), l.at + enc.length);
      return b;
    }
    case 'swap': {
      // Two sibling fields (same parent) exchange places: valid wire format, other meaning.
      const byParent = new Map<number, WireField[]>();
      for (const f of fields) byParent.set(f.parent, [...(byParent.get(f.parent) ?? []), f]);
      const groups = [...byParent.values()].filter((g) => g.length >= 2);
      if (!groups.length) return mutate(src, fields, rand, 'bitflip');
      const g = pick(groups);
      let i = int(g.length);
      let j = int(g.length);
      if (i === j) j = (j + 1) % g.length;
      if (i > j) [i, j] = [j, i];
      const a = g[i]!;
      const c = g[j]!;
      return concat([src.subarray(0, a.start), src.subarray(c.start, c.end), src.subarray(a.end, c.start), src.subarray(a.start, a.end), src.subarray(c.end)]);
    }
    case 'renumber': {
      // A field's number changes (same wire type): e.g. dims become data_type, input becomes output.
      const f = pick(fields);
      const tag = encodeVarint((1 + int(Math.max(16, f.field + 4))) * 8 + f.wire);
      const old = varint(src, f.start)!;
      return concat([src.subarray(0, f.start), Uint8Array.from(tag), src.subarray(old.next)]);
    }
    case 'duplicate': {
      const f = pick(fields);
      return concat([src.subarray(0, f.end), src.subarray(f.start, f.end), src.subarray(f.end)]);
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
