/**
 * The `onnx-compress` command line: the same engine as the VS Code extension.
 * Exit codes: 0 success, 1 internal error, 2 user error (bad input or usage), 130 interrupted.
 */
import { analyzeCommand, ANALYZE_USAGE } from './analyze';
import { applyCommand, APPLY_USAGE } from './apply';
import { compressCommand, COMPRESS_USAGE } from './compress';
import { evalCommand, EVAL_USAGE } from './eval';
import { infoCommand, INFO_USAGE } from './info';
import { PACK_USAGE, packCommand, UNPACK_USAGE, unpackCommand } from './pack';
import { EXIT, runCommand } from './util';

interface Command {
  summary: string;
  usage: string;
  run: (argv: string[], signal: AbortSignal) => Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  info: { summary: 'inputs, outputs, opsets, ops and the compressible weights of a model', usage: INFO_USAGE, run: infoCommand },
  eval: { summary: 'accuracy (top-1/top-5) and, against a reference model, agreement and fidelity', usage: EVAL_USAGE, run: evalCommand },
  analyze: { summary: 'per-layer sensitivity of every technique and level (sensitivity.json/.csv)', usage: ANALYZE_USAGE, run: analyzeCommand },
  compress: { summary: 'smallest model under a loss budget (or best under a size budget), with report', usage: COMPRESS_USAGE, run: compressCommand },
  apply: { summary: 'apply an explicit per-layer plan (plan.json) and write the compressed ONNX (+ archive)', usage: APPLY_USAGE, run: applyCommand },
  pack: { summary: 'entropy-code a compressed ONNX file into a compact archive (.onnxc)', usage: PACK_USAGE, run: packCommand },
  unpack: { summary: 'restore the ONNX file from an archive, byte for byte', usage: UNPACK_USAGE, run: unpackCommand },
};

function help(): string {
  return [
    'usage: onnx-compress <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`),
    '',
    'Run `onnx-compress <command> --help` for a command\'s options.',
    'Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 130 interrupted.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? EXIT.ok : EXIT.user;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`onnx-compress: unknown command '${name}'.\n${help()}\n`);
    return EXIT.user;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${cmd.usage}\n`);
    return EXIT.ok;
  }
  return runCommand((signal) => cmd.run(rest, signal), cmd.usage);
}

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : '0.0.0-dev';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
