/**
 * Errors raised by the engine. Every error carries a stable {@link ErrorCode} so the CLI and the
 * VS Code host can branch on it (exit code 2 for user errors, a notification, a retry...), and a
 * message that names the file, says what is wrong and what to do.
 */

/** Stable error codes. `user` codes mean the input is at fault (CLI exit code 2). */
export type ErrorCode =
  /** The file is not a readable ONNX model (empty, truncated, not protobuf, bad fields). */
  | 'E_MODEL_INVALID'
  /** The model uses something we do not support (IR version, data type, op). */
  | 'E_MODEL_UNSUPPORTED'
  /** External data is missing, short, or points outside the model folder. */
  | 'E_EXTERNAL_DATA'
  /** A tensor's data does not match its declared dtype/shape, or is NaN/Inf where that is not allowed. */
  | 'E_TENSOR_DATA'
  /** An argument (level, k, ratio, bits...) is out of range or of the wrong kind. */
  | 'E_BAD_ARGUMENT'
  /** A dataset does not fit the model (shape, dtype, labels, counts) or cannot be read. */
  | 'E_DATASET'
  /** A compression plan names unknown layers/techniques or levels out of range. */
  | 'E_PLAN'
  /** A file could not be read or written (permissions, full disk...). */
  | 'E_IO'
  /** The operation was cancelled through its AbortSignal. */
  | 'E_CANCELLED'
  /** A bug: an invariant of ours broke. */
  | 'E_INTERNAL';

const USER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'E_MODEL_INVALID',
  'E_MODEL_UNSUPPORTED',
  'E_EXTERNAL_DATA',
  'E_TENSOR_DATA',
  'E_BAD_ARGUMENT',
  'E_DATASET',
  'E_PLAN',
  'E_IO',
]);

/** An engine error with a stable code. */
export class CompressError extends Error {
  override readonly name = 'CompressError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  /** True when the input (not our code) is at fault: the CLI exits with code 2. */
  get isUserError(): boolean {
    return USER_CODES.has(this.code);
  }
}

/** Raised when an `AbortSignal` fires; check with {@link isCancellationError}. */
export class CancellationError extends CompressError {
  constructor(message = 'Operation cancelled.') {
    super('E_CANCELLED', message);
  }
}

/** True for our cancellation error and for DOM `AbortError`s. */
export function isCancellationError(e: unknown): boolean {
  return (
    e instanceof CancellationError ||
    (e instanceof Error && (e.name === 'AbortError' || (e as { code?: unknown }).code === 'ABORT_ERR'))
  );
}

/** Throws a {@link CancellationError} when `signal` is aborted. Call once per layer or chunk. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancellationError();
}

/** Shorthand for `new CompressError(code, message)`. */
export function fail(code: ErrorCode, message: string, cause?: unknown): never {
  throw new CompressError(code, message, cause === undefined ? undefined : { cause });
}
