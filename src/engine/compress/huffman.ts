/**
 * Huffman code lengths and the entropy-coded size of an index stream.
 */

/**
 * Optimal (Huffman) prefix-code lengths for symbol counts.
 *
 * Built with the two-queue method on symbols sorted by (count, symbol), so equal inputs always give
 * equal lengths. Symbols with count 0 get length 0 (no code). When only one symbol occurs it gets
 * length 1, since a decoder still needs one bit per symbol to count them.
 * @param counts occurrences per symbol (non-negative integers).
 * @returns code length per symbol.
 */
export function huffmanCodeLengths(counts: ArrayLike<number>): Uint8Array {
  const a = counts.length;
  const lengths = new Uint8Array(a);
  const used: number[] = [];
  for (let s = 0; s < a; s++) if (counts[s]! > 0) used.push(s);
  if (used.length === 0) return lengths;
  if (used.length === 1) {
    lengths[used[0]!] = 1;
    return lengths;
  }
  used.sort((x, y) => counts[x]! - counts[y]! || x - y);
  const m = used.length;
  // Nodes 0…m-1 are leaves (in sorted order), m…2m-2 internal nodes created in increasing weight.
  const weight = new Float64Array(2 * m - 1);
  const parent = new Int32Array(2 * m - 1);
  for (let i = 0; i < m; i++) weight[i] = counts[used[i]!]!;
  let leaf = 0;
  let node = m;
  let next = m;
  const take = (): number => {
    // Ties prefer leaves, which keeps the longest code short (a classic, deterministic choice).
    if (leaf < m && (node >= next || weight[leaf]! <= weight[node]!)) return leaf++;
    return node++;
  };
  for (; next < 2 * m - 1; next++) {
    const x = take();
    const y = take();
    weight[next] = weight[x]! + weight[y]!;
    parent[x] = next;
    parent[y] = next;
  }
  const depth = new Int32Array(2 * m - 1);
  for (let i = 2 * m - 3; i >= 0; i--) depth[i] = depth[parent[i]!]! + 1;
  for (let i = 0; i < m; i++) lengths[used[i]!] = depth[i]!;
  return lengths;
}

/** Size of a Huffman-coded stream. */
export interface EntropyBits {
  /** Σ count · length. */
  readonly payload: number;
  /** Code table: `alphabet · ⌈log2(maxLength + 1)⌉` bits (one canonical-code length per symbol). */
  readonly table: number;
  /** payload + table. */
  readonly total: number;
}

/**
 * Entropy-coded size of a stream with these symbol counts: a canonical Huffman code, whose table
 * is the code length of each of the `counts.length` symbols (0 = unused) in
 * `⌈log2(maxLength + 1)⌉` bits each, plus `Σ count · length` payload bits.
 */
export function huffmanBits(counts: ArrayLike<number>): EntropyBits {
  const lengths = huffmanCodeLengths(counts);
  let payload = 0;
  let maxLen = 0;
  for (let s = 0; s < lengths.length; s++) {
    payload += counts[s]! * lengths[s]!;
    if (lengths[s]! > maxLen) maxLen = lengths[s]!;
  }
  let lenBits = 0;
  while (2 ** lenBits < maxLen + 1) lenBits++;
  const table = counts.length * lenBits;
  return { payload, table, total: payload + table };
}

/** Counts of each value 0…alphabet-1 in `symbols`. */
export function symbolCounts(
  symbols: ArrayLike<number>,
  alphabet: number,
  offset = 0,
): Float64Array {
  const counts = new Float64Array(alphabet);
  for (let i = 0; i < symbols.length; i++) counts[symbols[i]! + offset]!++;
  return counts;
}
