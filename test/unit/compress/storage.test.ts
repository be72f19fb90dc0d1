import assert from 'node:assert/strict';
import { huffmanBits, huffmanCodeLengths } from '../../../src/engine/compress/huffman';
import { makeBits, totalModelBits } from '../../../src/engine/compress/storage';
import { mulberry32 } from '../../../src/engine/util/random';
import { expectError } from './helpers';

/** Optimal prefix-code cost by exhaustive search over length vectors with Kraft sum ≤ 1. */
function bruteForcePrefixCost(counts: number[]): number {
  const used = counts.filter((c) => c > 0);
  if (used.length === 1) return used[0]!;
  let best = Infinity;
  const lens = new Array<number>(used.length).fill(1);
  const rec = (i: number, kraft: number, cost: number): void => {
    if (kraft > 1 + 1e-12 || cost >= best) return;
    if (i === used.length) {
      best = cost;
      return;
    }
    for (let l = 1; l <= used.length; l++) {
      lens[i] = l;
      rec(i + 1, kraft + 2 ** -l, cost + used[i]! * l);
    }
  };
  rec(0, 0, 0);
  return best;
}

describe('compress/huffman', () => {
  it('known distributions', () => {
    assert.deepEqual(Array.from(huffmanCodeLengths([1, 1, 2, 4])), [3, 3, 2, 1]);
    // Dyadic: lengths are -log2 p and the payload equals n·H.
    const dyadic = [8, 4, 2, 1, 1];
    assert.deepEqual(Array.from(huffmanCodeLengths(dyadic)), [1, 2, 3, 4, 4]);
    assert.equal(huffmanBits(dyadic).payload, 30);
    // Uniform over 4 symbols: 2 bits each.
    assert.deepEqual(Array.from(huffmanCodeLengths([5, 5, 5, 5])), [2, 2, 2, 2]);
    // Unused symbols get no code; a single used symbol gets 1 bit.
    assert.deepEqual(Array.from(huffmanCodeLengths([0, 7, 0])), [0, 1, 0]);
    assert.deepEqual(Array.from(huffmanCodeLengths([0, 0])), [0, 0]);
  });

  it('table cost: alphabet · ⌈log2(maxLength + 1)⌉', () => {
    // [1,1,2,4]: payload 3+3+4+4 = 14, max length 3 → 2 bits per table entry, 4 entries.
    assert.deepEqual(huffmanBits([1, 1, 2, 4]), { payload: 14, table: 8, total: 22 });
    assert.deepEqual(huffmanBits([0, 9, 0, 0, 0, 0, 0, 0]), { payload: 9, table: 8, total: 17 });
  });

  it('is optimal (brute force) and satisfies Kraft equality on random counts', () => {
    const rand = mulberry32(12);
    for (let trial = 0; trial < 80; trial++) {
      const a = 2 + Math.floor(rand() * 5);
      const counts = Array.from({ length: a }, () =>
        rand() < 0.15 ? 0 : 1 + Math.floor(rand() * 50),
      );
      const lengths = huffmanCodeLengths(counts);
      const used = counts.filter((c) => c > 0).length;
      if (used >= 2) {
        const kraft = Array.from(lengths).reduce((s, l) => s + (l > 0 ? 2 ** -l : 0), 0);
        assert.equal(kraft, 1);
      }
      if (used >= 1)
        assert.equal(huffmanBits(counts).payload, bruteForcePrefixCost(counts), `counts ${counts}`);
    }
  });
});

describe('compress/storage', () => {
  it('makeBits totals the parts', () => {
    const b = makeBits({ indices: 100, codebook: 64, params: 8, sparsity: 10, entropyIndices: 70 });
    assert.equal(b.total, 182);
    assert.equal(b.entropyTotal, 152);
    assert.equal(makeBits({ indices: 5 }).entropyIndices, 5);
  });

  it('totals a model, counting untouched tensors at their real size', () => {
    const tensors = [
      { name: 'conv.w', elements: 100, bitsPerElement: 32 },
      { name: 'conv.b', elements: 10, bitsPerElement: 32 },
      { name: 'shape', elements: 5, bitsPerElement: 64 },
    ];
    const results = new Map([
      ['conv.w', { bits: makeBits({ indices: 200, codebook: 50, entropyIndices: 120 }) }],
    ]);
    const m = totalModelBits(tensors, results);
    assert.equal(m.originalBits, 3200 + 320 + 320);
    assert.equal(m.totalBits, 250 + 320 + 320);
    assert.equal(m.entropyTotalBits, 170 + 640);
    assert.equal(m.untouchedBits, 640);
    assert.equal(m.ratio, 3840 / 890);
    assert.deepEqual(
      m.perTensor.map((t) => [t.name, t.bits, t.compressed]),
      [
        ['conv.w', 250, true],
        ['conv.b', 320, false],
        ['shape', 320, false],
      ],
    );
  });

  it('rejects unknown and repeated names', () => {
    const b = { bits: makeBits({ indices: 1 }) };
    expectError(
      () => totalModelBits([{ name: 'a', elements: 1, bitsPerElement: 32 }], new Map([['b', b]])),
      'E_PLAN',
      "'b'",
    );
    expectError(
      () =>
        totalModelBits(
          [
            { name: 'a', elements: 1, bitsPerElement: 32 },
            { name: 'a', elements: 1, bitsPerElement: 32 },
          ],
          new Map(),
        ),
      'E_PLAN',
      'twice',
    );
  });
});
