/**
 * Cancellation at the edge (STYLE rule 4): the engine takes `AbortSignal`s, VS Code hands out
 * `CancellationToken`s; this is the one place that converts.
 */
import type * as vscode from 'vscode';

/**
 * An `AbortSignal` that aborts when `token` is cancelled (immediately if it already is).
 * The listener is removed when the returned `dispose` is called.
 */
export function toAbortSignal(token: vscode.CancellationToken): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  const sub = token.onCancellationRequested(() => controller.abort());
  return { signal: controller.signal, dispose: () => sub.dispose() };
}

/** True for the engine's `E_CANCELLED` (also when it crossed the worker boundary as an error reply). */
export function isCancellationError(e: unknown): boolean {
  return (
    e instanceof Error &&
    ((e as { code?: unknown }).code === 'E_CANCELLED' || e.name === 'AbortError' || e.name === 'CancellationError')
  );
}
