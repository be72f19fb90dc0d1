import { strict as assert } from 'node:assert';
import { isotonic, LossPredictor, mckp, minBytesUnderLoss, normalQuantile, pairedLossBounds, paretoFront, safeChoice, totals, type SearchLayer } from '../../../src/engine/explore/search';
import { confirmWithin, DEFAULT_KL_SCALE, edgeWithin, EDGE_FIT_MIN, fastUnderLoss, klScale, SEARCH_ON_FRACTIONS, searchLayers } from '../../../src/engine/explore/compress';
import type { PreparedModel } from '../../../src/engine/explore/workspace';
import type { Candidate } from '../../../src/engine/explore/types';
import { LARGE_MODEL_PARAMS, sensitivityLimit, skipReason } from '../../../src/engine/explore/analyze';
import { makeLevel } from '../../../src/engine/explore/levels';
import type { SensitivityCell, SensitivityFile } from '../../../src/engine/explore/types';
import { mulberry32 } from '../../../src/engine/util/random';

/** Every combination of one option per group (brute force). */
function* all(sizes: number[]): Generator<number[]> {
  const c = sizes.map(() => 0);
  for (;;) {
    yield [...c];
    let i = 0;
    while (i < sizes.length && ++c[i]! >= sizes[i]!) c[i++] = 0;
    if (i === sizes.length) return;
  }
}

describe('explore/search', () => {
  it('isotonic regression is non-decreasing and optimal (PAVA vs brute force on small cases)', () => {
    assert.deepEqual(isotonic([1, 3, 2, 4]), [1, 2.5, 2.5, 4]);
    assert.deepEqual(isotonic([3, 2, 1]), [2, 2, 2]);
    const rand = mulberry32(3);
    for (let t = 0; t < 50; t++) {
      const v = Array.from({ length: 5 }, () => Math.round(rand() * 10));
      const f = isotonic(v);
      for (let i = 1; i < f.length; i++) assert.ok(f[i]! >= f[i - 1]! - 1e-12);
      // the mean is preserved and no monotone grid sequence is closer
      assert.ok(Math.abs(f.reduce((a, b) => a + b) - v.reduce((a, b) => a + b)) < 1e-9);
      const err = (g: number[]) => g.reduce((s, x, i) => s + (x - v[i]!) ** 2, 0);
      for (const g of all([11, 11, 11, 11, 11])) {
        if (g.every((x, i) => i === 0 || x >= g[i - 1]!)) assert.ok(err(f) <= err(g) + 1e-9);
      }
    }
  });

  it('multiple-choice knapsack equals brute force', () => {
    const rand = mulberry32(7);
    for (let t = 0; t < 60; t++) {
      const groups = Array.from({ length: 4 }, () => {
        const n = 1 + Math.floor(rand() * 4);
        return { cost: Array.from({ length: n }, () => Math.floor(rand() * 6)), value: Array.from({ length: n }, () => Math.round(rand() * 100)) };
      });
      const cap = Math.floor(rand() * 14);
      let best = Infinity;
      for (const c of all(groups.map((g) => g.cost.length))) {
        const cost = c.reduce((s, o, i) => s + groups[i]!.cost[o]!, 0);
        if (cost <= cap) best = Math.min(best, c.reduce((s, o, i) => s + groups[i]!.value[o]!, 0));
      }
      const got = mckp(groups, cap);
      if (!Number.isFinite(best)) assert.equal(got, undefined);
      else {
        assert.ok(got);
        assert.ok(got.reduce((s, o, i) => s + groups[i]!.cost[o]!, 0) <= cap);
        assert.equal(got.reduce((s, o, i) => s + groups[i]!.value[o]!, 0), best);
      }
    }
  });

  it('minBytesUnderLoss never exceeds the loss budget and uses it', () => {
    const layer = (name: string, opts: Array<[number, number]>): SearchLayer => ({
      name,
      options: opts.map(([bytes, loss], i) => ({ key: `o${i}`, spec: null, bytes, bits: bytes * 8, loss })),
    });
    const layers = [layer('a', [[1000, 0], [500, 0.002], [250, 0.004]]), layer('b', [[800, 0], [400, 0.001], [100, 0.01]])];
    assert.deepEqual(minBytesUnderLoss(layers, 0.005), [2, 1]);
    assert.deepEqual(minBytesUnderLoss(layers, 0.0029), [1, 0]);
    assert.deepEqual(minBytesUnderLoss(layers, 0.02), [2, 2]);
  });

  it('Pareto front keeps exactly the non-dominated points', () => {
    const pts = [
      { bytes: 10, loss: 0.5 },
      { bytes: 20, loss: 0.1 },
      { bytes: 15, loss: 0.6 },
      { bytes: 30, loss: 0.1 },
      { bytes: 5, loss: 2 },
    ];
    assert.deepEqual([...paretoFront(pts)].sort(), [0, 1, 4]);
  });

  it('normalQuantile matches tabulated values and inverts symmetrically', () => {
    for (const [p, z] of [[0.5, 0], [0.8, 0.8416212], [0.9, 1.2815516], [0.975, 1.959964], [0.999, 3.0902323], [0.01, -2.3263479]] as const) {
      assert.ok(Math.abs(normalQuantile(p) - z) < 1e-6, `${p}: ${normalQuantile(p)} vs ${z}`);
    }
    for (const p of [0.001, 0.02, 0.3, 0.7]) assert.ok(Math.abs(normalQuantile(p) + normalQuantile(1 - p)) < 1e-9);
  });

  it('pairedLossBounds: point estimate, ordering, and one-sided coverage near the nominal level (seeded simulation)', () => {
    const b = pairedLossBounds({ up: 12, down: 4, samples: 1000 }, 0.9);
    assert.equal(b.loss, 0.008);
    assert.ok(b.lower < b.loss && b.loss < b.upper);
    // more flips (same net loss) = wider; zero flips still leaves a positive upper bound
    assert.ok(pairedLossBounds({ up: 30, down: 22, samples: 1000 }, 0.9).upper > b.upper);
    assert.ok(pairedLossBounds({ up: 0, down: 0, samples: 1000 }, 0.9).upper > 0);
    assert.ok(pairedLossBounds({ up: 12, down: 4, samples: 1000 }, 0.95).upper > b.upper);
    // true (p⁺, p⁻) pairs typical of compressed classifiers; n = 1000 paired samples
    const rand = mulberry32(11);
    for (const [pu, pd] of [[0.01, 0.005], [0.02, 0.02], [0.004, 0.001], [0.03, 0.015]] as const) {
      let covered = 0;
      const runs = 2000;
      for (let r = 0; r < runs; r++) {
        let up = 0;
        let down = 0;
        for (let i = 0; i < 1000; i++) {
          const u = rand();
          if (u < pu) up++;
          else if (u < pu + pd) down++;
        }
        if (pu - pd <= pairedLossBounds({ up, down, samples: 1000 }, 0.9).upper) covered++;
      }
      // nominal 90 %; the adjusted interval is slightly conservative for rare flips
      assert.ok(covered / runs >= 0.87 && covered / runs <= 0.97, `p⁺=${pu} p⁻=${pd}: coverage ${covered / runs}`);
    }
  });

  it('level pruning (skipReason): not smaller than the original, or larger than a measured level of another family that changed nothing', () => {
    const levels = [makeLevel('share', 64), makeLevel('prune', 0.5), makeLevel('quant', 8), makeLevel('float', 7)];
    const cell = (level: string, onnxBytes: number, loss: number, agreement: number): SensitivityCell => ({ layer: 'w', level, loss, ci: [loss, loss], top1: null, agreement, samples: 1000, stoppedEarly: false, bits: 0, entropyBits: 0, onnxBytes, relError: 0, seconds: 0 });
    const layer = { bytes: 4000 };
    assert.match(skipReason(layer, levels[2]!, 4000, [], levels)!, /not smaller/);
    assert.equal(skipReason(layer, levels[2]!, 1100, [], levels), undefined);
    const free = [cell('share:k=64', 900, 0, 1)];
    assert.match(skipReason(layer, levels[2]!, 1100, free, levels)!, /dominated.*share:k=64/);
    assert.equal(skipReason(layer, levels[2]!, 800, free, levels), undefined, 'smaller than the free level: measured');
    assert.equal(skipReason(layer, levels[1]!, 2200, free, levels), undefined, 'pruning is always measured (combinations need it)');
    assert.equal(skipReason(layer, levels[3]!, 2000, [cell('share:k=64', 900, 0, 0.999)], levels), undefined, 'a level that changed a prediction does not dominate');
    assert.equal(skipReason(layer, levels[3]!, 2000, [cell('share:k=64', 900, 0.001, 1)], levels), undefined);
  });

  it('fast search under a loss budget: when the summed cell losses say nothing, the weight-error ladder finds a plan that meets the budget', async () => {
    // Six layers whose cells all measured "free" (loss 0), but whose combination is not: the real
    // loss is 3·Σ relError² (fractions). Budget 0.5 points.
    const errs = [0.003, 0.006, 0.012, 0.024, 0.05, 0.1];
    const layers: SearchLayer[] = Array.from({ length: 6 }, (_, i) => ({
      name: `l${i}`,
      options: [
        { key: 'none', spec: null, bytes: 1000, bits: 8000, loss: 0 },
        ...errs.map((e, j) => ({ key: `x${j}`, spec: null, bytes: 500 - j * 60, bits: 1, loss: 0, relError: e })),
      ],
    }));
    const trueLoss = (choice: number[]) => choice.reduce((sum, o, i) => sum + 3 * (layers[i]!.options[o]!.relError ?? 0) ** 2, 0);
    const run = async (ls: SearchLayer[]) => {
      const seen: number[][] = [];
      const logs: string[] = [];
      const measure = async (choice: number[]): Promise<Candidate> => {
        seen.push(choice);
        const loss = trueLoss(choice);
        return { id: `c${seen.length}`, bytes: totals(ls, choice).bytes, loss, lossUpper: loss, feasible: loss <= 0.005 } as Candidate;
      };
      const best = await fastUnderLoss(ls, 0.005, new LossPredictor(1e-4), measure, { perIteration: 2, maxIterations: 8, tolerance: 0.01, signal: undefined }, (m) => logs.push(m));
      return { best, seen, logs };
    };
    const blind = await run(layers);
    assert.ok(blind.best?.feasible, 'a plan within the budget');
    // the knapsack proposes the smallest plan only (everything looks free), then the ladder
    // 0.08 → 0.04 → 0.02: the first plan within the budget has every layer at relative error 0.012
    assert.equal(blind.logs.length, 1);
    assert.equal(blind.seen.length, 4);
    assert.deepEqual(blind.seen[3], layers.map(() => 3));
    assert.deepEqual(safeChoice(layers, 0.02), layers.map(() => 3));
    assert.deepEqual(safeChoice(layers, 0.001), layers.map(() => 0), 'no option that accurate: none');
    // With informative cell losses the knapsack alone finds it (no fallback).
    const told = layers.map((l) => ({ ...l, options: l.options.map((o) => ({ ...o, loss: 3 * (o.relError ?? 0) ** 2 })) }));
    const informed = await run(told);
    assert.ok(informed.best?.feasible);
    assert.equal(informed.logs.length, 0);
    assert.ok(informed.best!.bytes <= blind.best!.bytes);
  });

  it('search costs: smoothed output divergence in loss units when cells carry it, else loss + disagreement', () => {
    const levels = [64, 16, 4, 2].map((k) => makeLevel('share', k));
    const mk = (layer: string, i: number, loss: number, agreement: number, kl: number | undefined): SensitivityCell => ({ layer, level: levels[i]!.id, loss, ci: [loss, loss], top1: null, agreement, samples: 1000, stoppedEarly: false, bits: 0, entropyBits: 0, onnxBytes: 400 - 100 * i, relError: 0, seconds: 0, ...(kl === undefined ? {} : { kl }) });
    // Layer a: the mild levels' losses are noise (≤ 0, not monotone), their divergences grow; the
    // harsh levels lose 1 and 4 points at 0.04 and 0.2 nats. Layer b: a divergence out of order.
    const cells = [
      mk('a', 0, 0, 0.999, 0.0005), mk('a', 1, -0.002, 0.99, 0.004), mk('a', 2, 0.01, 0.97, 0.04), mk('a', 3, 0.04, 0.9, 0.2),
      mk('b', 0, 0.001, 1, 0.002), mk('b', 1, 0, 0.995, 0.001), mk('b', 2, 0.02, 0.95, 0.08), mk('b', 3, 0.3, 0.6, 2),
    ];
    // κ: median of loss/KL over the cells losing 0.5–5 points (0.25, 0.2, 0.25); 30 points is left out
    assert.equal(klScale(cells), 0.25);
    assert.equal(klScale(cells.slice(0, 3)), DEFAULT_KL_SCALE, 'fewer than 3 usable cells');
    const pm = { layers: [{ name: 'a', bytes: 1000 }, { name: 'b', bytes: 1000 }] } as unknown as PreparedModel;
    const sf = { levels, cells } as unknown as SensitivityFile;
    const o = { combine: false, maxCombos: 0, comboLossLimit: 0.02 };
    const [a, b] = searchLayers(pm, sf, o);
    assert.deepEqual(a!.options.map((x) => x.loss), [0, 0.25 * 0.0005, 0.25 * 0.004, 0.25 * 0.04, 0.25 * 0.2]);
    // isotonic along the ladder: b's first two divergences pool to their mean
    assert.deepEqual(b!.options.map((x) => +x.loss.toFixed(9)), [0, 0.25 * 0.0015, 0.25 * 0.0015, 0.25 * 0.08, 0.25 * 2].map((x) => +x.toFixed(9)));
    // a study without divergences (older files): smoothed loss + 0.1 × disagreement
    const old = searchLayers(pm, { levels, cells: cells.map(({ kl: _, ...c }) => c) } as unknown as SensitivityFile, o);
    assert.deepEqual(old[0]!.options.map((x) => +x.loss.toFixed(9)), [0, 0 + 0.1 * 0.001, 0 + 0.1 * 0.01, 0.01 + 0.1 * 0.03, 0.04 + 0.1 * 0.1].map((x) => +x.toFixed(9)));
  });

  it('edge of the budget while bracketing: the loss the divergences predict (β fitted over the candidates) plus the rule\'s margin; measured feasibility before there are enough', () => {
    const budget = 0.005;
    // MobileNet-like: about 0.035 points of loss per 10⁻³ nats, one lucky and one unlucky plan
    const mk = (id: string, kl: number, loss: number, margin = 0): Candidate => ({ id, kl, loss, lossUpper: loss + margin, feasible: loss + margin <= budget } as Candidate);
    const lucky = mk('lucky', 0.0176, -0.0004);
    const unlucky = mk('unlucky', 0.015, 0.0082);
    const cs = [mk('a', 0.003, 0.001), mk('b', 0.0104, 0.0028), mk('c', 0.0144, 0.005), lucky, unlucky, mk('d', 0.03, 0.011)];
    // β = Σ loss·KL / Σ KL² = 5.5008e-4 / 1.75928e-3 = 0.3127: the edge is at KL 0.0160
    const within = edgeWithin(cs, budget);
    assert.deepEqual(cs.map(within), [true, true, true, false, true, false]);
    // the noisy plans are placed by their divergence, not by what they measured: the lucky one
    // (within the budget on the search data) is past the edge, the unlucky one short of it
    assert.ok(lucky.feasible && !within(lucky));
    assert.ok(!unlucky.feasible && within(unlucky));
    // the 80 % rule's margin counts against the plan
    const tight = mk('tight', 0.0144, 0.005, 0.002);
    assert.equal(edgeWithin([...cs, tight], budget)(tight), false);
    // too few candidates with divergences, or a candidate without one: measured feasibility
    const few = cs.slice(0, EDGE_FIT_MIN - 1);
    assert.deepEqual(few.map(edgeWithin(few, budget)), few.map((c) => c.feasible));
    const noKl = { id: 'x', loss: 0.001, feasible: true } as Candidate;
    assert.equal(within(noKl), true);
  });

  it('held-out check: walk back to larger candidates whose search loss plus the failures\' mean held-out excess fits, then search on under a cut budget; at most `tries` confirmations', async () => {
    const budget = 0.005;
    const mk = (id: string, bytes: number, loss: number, feasible = true): Candidate => ({ id, bytes, loss, feasible } as Candidate);
    // The held-out data is harder by `excess`: a candidate's held-out loss is its search loss + excess.
    const run = async (cands: Candidate[], tries: number, excess: number, searchOn?: (f: number) => Promise<Candidate>) => {
      const confirmed: string[] = [];
      const confirm = async (c: Candidate): Promise<boolean> => {
        confirmed.push(c.id);
        const loss = c.loss + excess;
        c.holdout = { top1: null, loss, samples: 5000, passed: loss <= budget };
        return loss <= budget;
      };
      const r = await confirmWithin(cands[0]!, cands, { maxLoss: budget, tries, sizeOf: (c) => c.bytes, confirm, checked: () => confirmed.length, searchOn });
      return { ...r, confirmed };
    };
    const cands = () => [mk('c1', 1000, 0.0045), mk('c2', 1100, 0.0048), mk('c3', 1200, 0.003), mk('c4', 1300, 0.0015), mk('c5', 1250, 0.001, false), mk('c6', 900, 0.001)];
    // 0.3 points harder: chosen c1 (0.45) fails by 0.3; c2 lost more on the search data, c3 (0.30)
    // would need 0.60 on held-out: both skipped; c4 (0.15 + 0.3) passes. c5 is infeasible, c6 smaller.
    const a = await run(cands(), 4, 0.003);
    assert.deepEqual(a.confirmed, ['c1', 'c4']);
    assert.equal(a.chosen.id, 'c4');
    assert.ok(a.moved && a.passed);
    // 0.1 points harder: c3 (0.30 + 0.1) is the next to fit, and passes
    const a2 = await run(cands(), 4, 0.001);
    assert.deepEqual(a2.confirmed, ['c1', 'c3']);
    assert.equal(a2.chosen.id, 'c3');
    // Nothing measured fits: search on at 0.6, 0.35, 0.2 of the budget; s1 (0.35) and s2 (0.25)
    // would not fit either, s3 (0.10) is confirmed and passes.
    const fractions: number[] = [];
    const plans = () => new Map([[0.6, mk('s1', 1400, 0.0035)], [0.35, mk('s2', 1500, 0.0025)], [0.2, mk('s3', 1600, 0.001)]]);
    const pb = plans();
    const b = await run([mk('c1', 1000, 0.0045), mk('c3', 1200, 0.004)], 6, 0.003, async (f) => (fractions.push(f), pb.get(f)!));
    assert.deepEqual(fractions, [...SEARCH_ON_FRACTIONS]);
    assert.deepEqual(b.confirmed, ['c1', 's3']);
    assert.equal(b.chosen.id, 's3');
    assert.ok(b.moved && b.passed);
    // One try: the first choice is kept (it failed).
    const pc = plans();
    const c = await run([mk('c1', 1000, 0.0045), mk('c3', 1200, 0.001)], 1, 0.003, async (f) => pc.get(f)!);
    assert.deepEqual(c.confirmed, ['c1']);
    assert.equal(c.chosen.id, 'c1');
    assert.ok(!c.moved && !c.passed);
    // A plan the search on finds again, or one that lost more than a failure, is not confirmed.
    const d = await run([mk('c1', 1000, 0.0045)], 6, 0.003, async () => mk('s9', 1100, 0.005));
    assert.deepEqual(d.confirmed, ['c1']);
    assert.ok(!d.passed);
    // With divergences, either model may let a candidate through. ResNet-8 all: c7 (15.7×) lost
    // 0.16 on the search data (lucky) and 0.90 held-out at KL 26.9 × 10⁻³: an excess of 0.74 that no
    // plan fits, but βh = 0.033 points per 10⁻³ predicts c11 (KL 14.3: 0.48) and c13 (KL 4.8: 0.16)
    // can pass; c5 (KL 19.7: 0.66) cannot. c11 fails (0.62), c13 passes (0.30).
    const k = (id: string, bytes: number, loss: number, kl: number): Candidate => ({ id, bytes, loss, kl, feasible: true } as Candidate);
    const run2 = async (cs: Candidate[], heldOut: Map<string, number>) => {
      const confirmed: string[] = [];
      const r = await confirmWithin(cs[0]!, cs, {
        maxLoss: budget,
        tries: 4,
        sizeOf: (c) => c.bytes,
        checked: () => confirmed.length,
        searchOn: undefined,
        confirm: async (c) => {
          confirmed.push(c.id);
          const loss = heldOut.get(c.id)!;
          c.holdout = { top1: null, loss, samples: 5000, passed: loss <= budget };
          return loss <= budget;
        },
      });
      return { ...r, confirmed };
    };
    const e = await run2([k('c7', 1000, 0.0016, 0.0269), k('c5', 1030, 0.0036, 0.0197), k('c11', 1140, 0.0038, 0.0143), k('c13', 1400, 0.0006, 0.0048)], new Map([['c7', 0.009], ['c11', 0.0062], ['c13', 0.003]]));
    assert.deepEqual(e.confirmed, ['c7', 'c11', 'c13']);
    assert.equal(e.chosen.id, 'c13');
    // ResNet-8 share: c10 lost 0.22 and 0.68 held-out at KL 22.0 (excess 0.46, βh 0.031); cX fits
    // neither model (search loss 0.42 above the failure's, KL 21 predicts 0.65); c2 (0.04 + 0.46)
    // fits the excess model.
    const f = await run2([k('c10', 1000, 0.0022, 0.022), k('cX', 1010, 0.0042, 0.021), k('c2', 1500, 0.0004, 0.0029)], new Map([['c10', 0.0068], ['c2', 0.0004]]));
    assert.deepEqual(f.confirmed, ['c10', 'c2'], 'cX: search loss above the failure\'s, KL 21 predicts 0.65');
    assert.equal(f.chosen.id, 'c2');
  });

  it("sensitivity limit 'auto': 1000 samples, 500 above 1 M compressible parameters; numbers and undefined pass through", () => {
    assert.equal(sensitivityLimit('auto', 61_320), 1000);
    assert.equal(sensitivityLimit('auto', LARGE_MODEL_PARAMS), 1000);
    assert.equal(sensitivityLimit('auto', LARGE_MODEL_PARAMS + 1), 500);
    assert.equal(sensitivityLimit('auto', 11_175_370), 500);
    assert.equal(sensitivityLimit(200, 11_175_370), 200);
    assert.equal(sensitivityLimit(undefined, 11_175_370), undefined);
  });
});
