/**
 * CSV renderings of the result files (RFC 4180: comma-separated, CRLF-free `\n` rows, fields with
 * commas, quotes or line breaks quoted with `""` doubling). Text fields that a spreadsheet would
 * run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) get a leading `'`.
 */
import type { CandidatesFile, SensitivityFile } from '../explore/types';

/** One CSV field. Numbers are written as JS writes them; null/undefined become empty. */
export function csvField(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  let s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  if (/[",\n\r]/.test(s)) s = `"${s.replace(/"/g, '""')}"`;
  return s;
}

/** Rows to CSV text (header first), ending with a newline. */
export function toCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>): string {
  return [header.map(csvField).join(','), ...rows.map((r) => r.map(csvField).join(','))].join('\n') + '\n';
}

/**
 * `sensitivity.csv`: one row per measured cell, layers in graph order then levels in column order.
 * Losses are fractions (0.004 = 0.4 points).
 */
export function sensitivityCsv(s: SensitivityFile): string {
  const byKey = new Map(s.cells.map((c) => [`${c.layer}\u0000${c.level}`, c]));
  const rows: Array<Array<string | number | boolean | null>> = [];
  for (const l of s.layers) {
    for (const lv of s.levels) {
      const c = byKey.get(`${l.name}\u0000${lv.id}`);
      if (!c) continue;
      rows.push([l.name, l.op, l.kind, l.params, l.bytes, lv.id, lv.technique, lv.label, c.loss, c.ci[0], c.ci[1], c.top1, c.agreement, c.samples, c.stoppedEarly, c.bits, c.entropyBits, c.onnxBytes, c.relError, c.kl ?? null, c.seconds]);
    }
  }
  return toCsv(['layer', 'op', 'kind', 'params', 'bytes', 'level', 'technique', 'label', 'loss', 'ci_lo', 'ci_hi', 'top1', 'agreement', 'samples', 'stopped_early', 'bits', 'entropy_bits', 'onnx_bytes', 'rel_error', 'kl', 'seconds'], rows);
}

/** `candidates.csv`: one row per candidate; `plan` is the plan JSON. */
export function candidatesCsv(f: CandidatesFile): string {
  return toCsv(
    ['id', 'bytes', 'ratio', 'theoretical_bytes', 'top1', 'loss', 'loss_upper', 'flips_up', 'flips_down', 'predicted_loss', 'holdout_top1', 'holdout_loss', 'holdout_samples', 'evaluations', 'pareto', 'feasible', 'chosen', 'plan'],
    f.candidates.map((c) => [c.id, c.bytes, c.ratio, c.theoreticalBytes, c.top1, c.loss, c.lossUpper ?? null, c.flips?.up ?? null, c.flips?.down ?? null, c.predictedLoss, c.holdout?.top1 ?? null, c.holdout?.loss ?? null, c.holdout?.samples ?? null, c.evaluations, c.pareto, c.feasible, c.id === f.chosen, JSON.stringify(c.plan)]),
  );
}
