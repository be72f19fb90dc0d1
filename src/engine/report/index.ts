/**
 * Public surface of `engine/report`: CSV, Markdown and HTML renderings of the result files, and
 * {@link writeCompressReports} which writes them atomically into a results folder.
 */
import * as path from 'node:path';
import type { CandidatesFile, SensitivityFile } from '../explore/types';
import { writeFileAtomic } from '../util/atomicWrite';
import { candidatesCsv } from './csv';
import { htmlReport } from './html';
import { markdownReport } from './markdown';

export { candidatesCsv, csvField, sensitivityCsv, toCsv } from './csv';
export { esc, htmlReport, lossColor } from './html';
export { markdownReport, mdText } from './markdown';

/** Writes `candidates.csv`, `report.md` and `report.html` into `dir` (each atomically). */
export async function writeCompressReports(dir: string, sf: SensitivityFile, cf: CandidatesFile): Promise<void> {
  await writeFileAtomic(path.join(dir, 'candidates.csv'), candidatesCsv(cf));
  await writeFileAtomic(path.join(dir, 'report.md'), markdownReport(sf, cf));
  await writeFileAtomic(path.join(dir, 'report.html'), htmlReport(sf, cf));
}
