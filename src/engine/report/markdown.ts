/** `report.md`: the chosen plan, the Pareto front and how everything was measured. */
import { specLabel } from '../explore/plan';
import { layerSpec } from '../explore/plan';
import type { Candidate, CandidatesFile, SensitivityFile } from '../explore/types';

/** Text safe inside a Markdown table cell: no HTML, no pipes, no line breaks, no code spans. */
export function mdText(s: string): string {
  return s.replace(/[\\`*_[\]<>|&]/g, (c) => `\\${c}`).replace(/[\r\n\t]+/g, ' ');
}

/** Points with 2 decimals, e.g. `0.40 pt`; `—` for null. */
export function pts(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(2)} pt`;
}

/** Percent with 2 decimals; `—` for null. */
export function pct(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(2)} %`;
}

/** Bytes with thousands separators. */
export function bytesText(n: number): string {
  return `${Math.round(n).toLocaleString('en-US')} B`;
}

/** Per-layer rows of a candidate's plan: label, bytes before, bytes after (estimate) and single-layer loss. */
export function planRows(sf: SensitivityFile, c: Candidate): Array<{ layer: string; op: string; params: number; label: string; before: number; after: number | null; loss: number | null }> {
  const cells = new Map(sf.cells.map((x) => [`${x.layer}\u0000${x.level}`, x]));
  const levelBySpec = new Map(sf.levels.map((l) => [JSON.stringify(l.spec), l.id]));
  return sf.layers.map((l) => {
    const lp = c.plan.layers?.[l.name] ?? c.plan.default ?? { technique: 'none' };
    let spec = null;
    try {
      spec = layerSpec(lp, l.name);
    } catch {
      spec = null;
    }
    const level = spec ? levelBySpec.get(JSON.stringify(spec)) : undefined;
    const cell = level ? cells.get(`${l.name}\u0000${level}`) : undefined;
    return { layer: l.name, op: l.op, params: l.params, label: specLabel(spec), before: l.bytes, after: spec ? cell?.onnxBytes ?? null : l.bytes, loss: spec ? cell?.loss ?? null : 0 };
  });
}

/** The Markdown report. */
export function markdownReport(sf: SensitivityFile, cf: CandidatesFile): string {
  const chosen = cf.candidates.find((c) => c.id === cf.chosen);
  const budget = 'maxLoss' in cf.budget ? `top-1 loss ≤ ${pts(cf.budget.maxLoss)}` : `size ≤ ${bytesText(cf.budget.maxSize)}`;
  const out: string[] = [];
  out.push(`# Compression report: ${mdText(cf.model.file)}`, '');
  out.push(`- Model: ${bytesText(cf.model.bytes)}, sha256 \`${cf.model.sha256.slice(0, 16)}…\`, ${cf.model.compressibleParams.toLocaleString('en-US')} compressible parameters in ${sf.layers.length} layers`);
  out.push(`- Search data: ${mdText(cf.dataset.source)} (${cf.dataset.samples} samples, ${cf.dataset.labels ? 'labelled: loss = top-1 accuracy drop' : 'no labels: loss = top-1 disagreement with the original'})`);
  out.push(`- Baseline top-1: ${pct(cf.baseline.top1)}`);
  out.push(`- Budget: ${budget}; techniques: ${cf.techniques.join(', ')}`, '');
  if (chosen) {
    out.push(`## Chosen: ${chosen.id}`, '');
    out.push(`- Compressed ONNX: **${bytesText(chosen.bytes)}** (${chosen.ratio.toFixed(2)}× smaller than ${bytesText(cf.model.bytes)})${chosen.archiveBytes ? `; archive ${bytesText(chosen.archiveBytes)} (${(cf.model.bytes / chosen.archiveBytes).toFixed(2)}×)` : ''}`);
    out.push(`- Search data: top-1 ${pct(chosen.top1)}, loss ${pts(chosen.loss)}${chosen.lossUpper !== undefined ? ` (${Math.round((cf.selection?.confidence ?? 0.5) * 100)} % upper bound ${pts(chosen.lossUpper)}${chosen.flips ? `; ${chosen.flips.up} right→wrong, ${chosen.flips.down} wrong→right` : ''})` : ''}, predicted ${pts(chosen.predictedLoss)}`);
    const used = cf.selection?.holdoutUsedForChoice ? 'used for the final check (walk-back)' : 'not seen by the search';
    out.push(chosen.holdout ? `- Held-out data (${mdText(cf.holdoutDataset?.source ?? '')}, ${chosen.holdout.samples} samples, ${used}): top-1 ${pct(chosen.holdout.top1)}, loss ${pts(chosen.holdout.loss)}${chosen.holdout.ci ? ` (95 % CI ${pts(chosen.holdout.ci[0])} … ${pts(chosen.holdout.ci[1])})` : ''}` : '- Held-out data: none given (pass `--holdout`)');
    if (cf.selection) out.push(`- Choice: ${mdText(cf.selection.note)}`);
    if (cf.outputs.model) out.push(`- Files: \`${mdText(cf.outputs.model)}\`${cf.outputs.archive ? `, \`${mdText(cf.outputs.archive)}\`` : ''}${cf.outputs.plan ? `, \`${mdText(cf.outputs.plan)}\`` : ''}`);
    out.push('', '| layer | op | params | technique | bytes before | bytes after | single-layer loss |', '|---|---|---:|---|---:|---:|---:|');
    for (const r of planRows(sf, chosen)) out.push(`| ${mdText(r.layer)} | ${mdText(r.op)} | ${r.params.toLocaleString('en-US')} | ${mdText(r.label)} | ${r.before.toLocaleString('en-US')} | ${r.after === null ? '—' : r.after.toLocaleString('en-US')} | ${pts(r.loss)} |`);
    out.push('');
  } else {
    out.push('## No candidate meets the budget', '', 'Loosen the budget, or add techniques with `--techniques`.', '');
  }
  out.push('## Candidates (Pareto front first)', '', '| id | bytes | ratio | top-1 | loss | upper bound | predicted | held-out loss | meets budget |', '|---|---:|---:|---:|---:|---:|---:|---:|---|');
  const sorted = [...cf.candidates].sort((a, b) => Number(b.pareto) - Number(a.pareto) || a.bytes - b.bytes);
  for (const c of sorted) out.push(`| ${c.id}${c.id === cf.chosen ? ' (chosen)' : ''}${c.pareto ? ' ★' : ''} | ${c.bytes.toLocaleString('en-US')} | ${c.ratio.toFixed(2)}× | ${pct(c.top1)} | ${pts(c.loss)} | ${pts(c.lossUpper)} | ${pts(c.predictedLoss)} | ${pts(c.holdout?.loss)} | ${c.feasible ? 'yes' : 'no'} |`);
  out.push('', '★ = on the Pareto front of (bytes, loss).', '');
  const b = cf.breakdown;
  out.push('## How this was measured', '');
  out.push(`- Sensitivity: each compressible layer compressed alone at each of ${sf.levels.length} levels, evaluated against the original on ${sf.dataset.samples} samples (${sf.cells.length} cells; levels of a technique harsher than one that lost more than ${pts(sf.budget)} stop early once decisively above it).`);
  out.push(`- Search (${b?.method ?? 'fast'}): ${b?.method === 'greedy' ? 'every layer\'s next level measured for real at each step' : 'an exact multiple-choice knapsack on the smoothed single-layer losses (loss of a combination ≈ α·Σ losses, α refitted after every real measurement) proposes the smallest plans; each candidate is built with the encoder (its real ONNX file size) and evaluated on all the search data'}.`);
  out.push(`- Evaluations: ${cf.evaluations}${b ? ` (${b.cells} sensitivity cells measured in this run, ${b.search} candidates, ${b.holdout} held-out)` : ''}; ${cf.seconds.toFixed(1)} s.`);
  out.push('- Loss is in percentage points of top-1 against the original model on the same samples; confidence intervals of single cells are in `sensitivity.csv`.', '');
  return out.join('\n');
}
