/** Shared helpers of the CLI: argument parsing, output formatting, errors and exit codes. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CompressError, isCancellationError } from '../engine/errors';

/** Exit codes: 0 ok, 1 internal error, 2 user error (bad input, bad arguments), 130 interrupted. */
export const EXIT = { ok: 0, internal: 1, user: 2, interrupted: 130 } as const;

/** Raised for bad command-line usage; printed with the command's usage line. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `parseArgs` with strict options; unknown flags become a {@link UsageError}. */
export function parse<const O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Formats a byte count for people: `1.23 MB` (powers of 1000, like file managers). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

/** Renders rows as an aligned text table; numeric-looking cells are right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const isNum = (s: string): boolean => /^[-+]?[\d.,]+(?:\s?[a-zA-Z%×x]*)?$/.test(s);
  const line = (r: string[]): string =>
    r.map((c, i) => (isNum(c) && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * Runs a command body, mapping errors to messages on stderr and exit codes: user errors (bad
 * input, {@link UsageError}) exit 2, cancellation 130, anything else 1 with the stack.
 */
export async function runCommand(body: (signal: AbortSignal) => Promise<void>, usage: string): Promise<number> {
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) process.exit(EXIT.interrupted);
    process.stderr.write('\nInterrupted: stopping after the current step (Ctrl-C again to quit now).\n');
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await body(ac.signal);
    return EXIT.ok;
  } catch (e) {
    if (isCancellationError(e)) {
      process.stderr.write('onnx-compress: cancelled; finished results were kept.\n');
      return EXIT.interrupted;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`onnx-compress: ${e.message}\n${usage}\n`);
      return EXIT.user;
    }
    if (e instanceof CompressError) {
      process.stderr.write(`onnx-compress: error: ${e.message}\n`);
      return e.isUserError ? EXIT.user : EXIT.internal;
    }
    process.stderr.write(`onnx-compress: internal error: ${(e as Error)?.stack ?? String(e)}\nPlease report this with the command you ran.\n`);
    return EXIT.internal;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
