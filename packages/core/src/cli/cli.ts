/**
 * The `marlin` command line: inspect, convert, doctor, build. `runCli(argv, io)` returns the exit code and never calls
 * process.exit, so tests drive it in-process; src/cli/main.ts is the executable wrapper.
 *
 * Exit codes: 0 success, 1 bad input or failure (one line: error code, what was wrong, the fix), 2 usage error,
 * 130 cancelled by SIGINT (Ctrl-C), 143 cancelled by SIGTERM.
 */
import { access } from 'node:fs/promises';
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import pkg from '../../package.json';
import type { CheckpointReport } from '../checkpoint/convert.js';
import { convertCheckpoint, inspectCheckpoint } from '../checkpoint/convert.js';
import { resolveOutputPath } from '../checkpoint/files.js';
import type { WriteProgress } from '../checkpoint/packed.js';
import { CancelledError, MarlinError } from '../errors/index.js';
import type { HalfDtype } from '../format/types.js';
import { buildAddon } from './build.js';
import { doctorJson, formatDoctor, runDoctor } from './doctor.js';

/** Where the CLI writes; process.stdout / process.stderr by default. */
export interface CliIo {
  readonly stdout: { write(s: string): unknown; isTTY?: boolean };
  readonly stderr: { write(s: string): unknown; isTTY?: boolean };
  /** SIGINT / SIGTERM source (process by default); the CLI subscribes only while converting. */
  readonly signals?: {
    once(event: CancelSignal, f: () => void): unknown;
    off(event: CancelSignal, f: () => void): unknown;
  };
}

const HELP: Record<string, string> = {
  main: `marlin: INT4/INT8 Marlin checkpoints for Node.js

Usage: marlin <command> [options]

Commands:
  inspect <dir>                 describe a GPTQ / AWQ / compressed-tensors / FP8 checkpoint and what convert would do
  convert <dir> <out>           write the packed marlin-ts checkpoint (one .safetensors file)
  doctor                        platform, glibc, driver and GPU facts (print in bug reports)
  build <addon>                 build an addon (dense, fp8) from the sources it ships, into the loader's cache

Options:
  -h, --help                    help (also: marlin <command> --help)
  -v, --version                 version of @marlin/core
`,
  inspect: `Usage: marlin inspect <dir> [--json] [--all] [--scale-dtype fp16|bf16]

Reads config.json / quantize_config.json and the safetensors headers (single file or sharded index) and lists
the format, every quantized layer (K x N, bits, group size, bytes), whether it converts and, if not, why, the
modules the config leaves unquantized, and the tensors copied through unchanged. For FP8 layers it reports the
largest relative error of rounding the checkpoint's scales to the packed scale dtype.

Options:
  --json                    machine-readable report on stdout
  --all                     list every layer (default: the first 20 of each status)
  --scale-dtype fp16|bf16   the scale dtype convert would be given (FP8 f32 scales: default bf16)
`,
  convert: `Usage: marlin convert <dir> <out.safetensors> [options]

Converts every quantized linear to the packed format (bit exact: the same dequantized weights as the checkpoint)
and copies all other tensors through unchanged. Ctrl-C (SIGINT) or SIGTERM cancels and removes the partial output.

Options:
  --scale-dtype fp16|bf16   re-encode scales to this activation dtype (default: the checkpoint's, bit exact)
  --keep-unsupported        copy layers that cannot be converted through in their source layout instead of failing
  --force                   overwrite <out> if it exists
  --quiet                   no progress output
`,
  build: `Usage: marlin build <addon> [--archs 80;90a] [--jobs N] [--dry-run]

Builds @marlin/<addon> from the native sources its package ships, for machines its prebuilt package does not
serve (another glibc, other GPU targets). Needs nvcc from CUDA 13.0+, cmake 3.25+, a C++ compiler, make or ninja and
node-addon-api + node-api-headers; no GPU. Writes $XDG_CACHE_HOME/marlin/<addon>/<version>/ (~/.cache/marlin when
unset; MARLIN_CACHE_DIR overrides), never node_modules; the addon's loader tries that binary last.

Options:
  --archs <list>            GPU targets, e.g. "80;90a" (SASS); "80-virtual" is compute_80 PTX (default: the GPUs
                            nvidia-smi lists, else the release set: sm_80, 86, 89, 90a, 100, 120 + compute_80 PTX)
  --jobs <n>                parallel compile jobs
  --dry-run                 check the toolchain and print the commands, build nothing
`,
  doctor: `Usage: marlin doctor [--json]

Prints the platform, Node and glibc versions, and what the optional @marlin/dense addon's probe() reports
(driver, CUDA version, devices). Works without a GPU.
`,
};

/** Signals that cancel a conversion: Ctrl-C, and what timeout, docker stop and systemd send. */
export type CancelSignal = 'SIGINT' | 'SIGTERM';

/** Exit code of a conversion cancelled by each signal (128 + the signal number, as a shell reports it). */
const SIGNAL_EXIT: Record<CancelSignal, number> = { SIGINT: 130, SIGTERM: 143 };

class UsageError extends Error {}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

function mb(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/**
 * Runs the CLI with `argv` (without "node" and the script path).
 * @returns the process exit code.
 */
export async function runCli(argv: readonly string[], io: CliIo = process): Promise<number> {
  const out = (s: string): void => void io.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  const err = (s: string): void => void io.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help') {
      out(HELP.main);
      return command === undefined ? 2 : 0;
    }
    if (command === '-v' || command === '--version') {
      out(pkg.version);
      return 0;
    }
    if (command === 'help') {
      out(HELP[rest[0] ?? 'main'] ?? HELP.main);
      return 0;
    }
    if (!Object.hasOwn(HELP, command) || command === 'main') {
      throw new UsageError(`unknown command "${command}"; run marlin --help.`);
    }
    if (rest.includes('-h') || rest.includes('--help')) {
      out(HELP[command]);
      return 0;
    }
    switch (command) {
      case 'inspect':
        return await inspect(rest, out, err);
      case 'convert':
        return await convert(rest, io, out, err);
      case 'build':
        return build(rest, out);
      default:
        return await doctor(rest, out);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`marlin: ${e.message}`);
      return 2;
    }
    if (e instanceof MarlinError) {
      err(`marlin: ${e.code}: ${oneLine(e.message)}`);
      return e instanceof CancelledError ? 130 : 1;
    }
    err(`marlin: internal error: ${oneLine((e as Error).stack ?? String(e))}`);
    return 1;
  }
}

function scaleDtypeOption(v: unknown): HalfDtype | undefined {
  if (v !== undefined && v !== 'fp16' && v !== 'bf16') {
    throw new UsageError(`--scale-dtype must be fp16 or bf16, got "${String(v)}".`);
  }
  return v;
}

function parse(args: readonly string[], options: ParseArgsConfig['options'], positionals: number, usage: string) {
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} Usage: ${usage}`);
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(`expected ${positionals} argument(s), got ${parsed.positionals.length}. Usage: ${usage}`);
  }
  return parsed;
}

async function inspect(args: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, all: { type: 'boolean' }, 'scale-dtype': { type: 'string' } },
    1,
    'marlin inspect <dir> [--json] [--all] [--scale-dtype fp16|bf16]',
  );
  const report = await inspectCheckpoint(positionals[0], { scaleDtype: scaleDtypeOption(values['scale-dtype']) });
  if (values.json) {
    out(JSON.stringify(report, null, 2));
  } else {
    out(formatReport(report, values.all === true));
  }
  for (const w of report.warnings) err(`marlin: warning: ${w}`);
  if (report.problem === null) return 0;
  // The last line says why the exit code is 1, as every other failure does (code, what was wrong, the fix).
  err(`marlin: ${report.problem.code}: ${oneLine(report.problem.message)}`);
  return 1;
}

/** Human-readable `marlin inspect` output. */
export function formatReport(r: CheckpointReport, all: boolean): string {
  const lines: string[] = [];
  lines.push(`checkpoint  ${r.path} (${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${mb(r.totalBytes)})`);
  const cfg = r.config;
  const detail =
    cfg === null
      ? 'no quantization config'
      : Object.entries(cfg)
          .filter(([k]) =>
            [
              'bits',
              'group_size',
              'desc_act',
              'sym',
              'checkpoint_format',
              'version',
              'zero_point',
              'format',
              'fmt',
              'weight_block_size',
              'activation_scheme',
            ].includes(k),
          )
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(' ');
  lines.push(`format      ${r.sourceFormat}${detail ? `  ${detail}` : ''}`);
  if (r.configProblem) lines.push(`UNSUPPORTED ${r.configProblem}`);
  lines.push(
    `layers      ${r.layers.length} quantized: ${r.counts.convert} convert, ${r.counts.unsupported} unsupported, ${r.counts.invalid} invalid`,
  );
  const shown = all ? Number.POSITIVE_INFINITY : 20;
  for (const status of ['convert', 'unsupported', 'invalid'] as const) {
    const ls = r.layers.filter((l) => l.status === status);
    if (ls.length === 0) continue;
    lines.push(`\n${status} (${ls.length}):`);
    for (const l of ls.slice(0, shown)) {
      const g = l.groupSize === l.K && l.K > 0 ? 'per-channel' : `g${l.groupSize}`;
      const fp8 = l.codeType === 'e4m3';
      const flags = [fp8 ? '' : l.hasZeros ? 'zeros' : 'sym', l.actOrder ? 'act-order' : '', l.scaleDtype ?? '']
        .filter(Boolean)
        .join(',');
      const size = status === 'convert' ? `${mb(l.sourceBytes)} -> ${mb(l.packedBytes)}` : mb(l.sourceBytes);
      const rounding =
        l.scaleRoundingError === null ? '' : `  scale rounding <= ${l.scaleRoundingError.toExponential(2)} (relative)`;
      lines.push(
        `  ${l.name}  ${l.K}x${l.N} ${fp8 ? 'fp8-e4m3' : `int${l.bits}`} ${g} ${flags}  ${size}${rounding}${l.reason ? `\n      why: ${l.reason}` : ''}${l.sparse ? `\n      2:4 sparse (${l.sparse.source}): convert produces ${l.sparse.produces}` : ''}`,
      );
    }
    if (ls.length > shown) lines.push(`  ... ${ls.length - shown} more (--all lists them)`);
  }
  if (r.unquantized.length > 0) {
    lines.push(`\nleft unquantized (${r.unquantized.length}), copied through:`);
    for (const u of r.unquantized.slice(0, shown))
      lines.push(`  ${u.name}  ${u.dtype} [${u.shape.join(', ')}]  ${u.reason}`);
    if (r.unquantized.length > shown) lines.push(`  ... ${r.unquantized.length - shown} more (--all lists them)`);
  }
  lines.push(`\npassthrough ${r.passthrough.length} tensors, ${mb(r.passthroughBytes)} copied unchanged`);
  return lines.join('\n');
}

async function convert(
  args: readonly string[],
  io: CliIo,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const usage =
    'marlin convert <dir> <out.safetensors> [--scale-dtype fp16|bf16] [--keep-unsupported] [--force] [--quiet]';
  const { values, positionals } = parse(
    args,
    {
      'scale-dtype': { type: 'string' },
      'keep-unsupported': { type: 'boolean' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
    },
    2,
    usage,
  );
  const scaleDtype = scaleDtypeOption(values['scale-dtype']);
  const [dir, target] = positionals;
  // A directory, device or FIFO is refused (coded IoError) before "exists" is asked: --force cannot make it writable.
  await resolveOutputPath(target);
  if (
    !values.force &&
    (await access(target).then(
      () => true,
      () => false,
    ))
  ) {
    throw new UsageError(`${target} already exists; pass --force to overwrite it.`);
  }
  const ac = new AbortController();
  let caught: CancelSignal | null = null;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const f = (): void => {
      caught = sig;
      ac.abort(new CancelledError(`Interrupted (${sig}).`));
    };
    return [sig, f] as const;
  });
  const signals = io.signals ?? process;
  // With a listener installed the process is not killed: the conversion stops and removes its partial file first.
  for (const [sig, f] of handlers) signals.once(sig, f);
  const progress = values.quiet ? null : makeProgress(io.stderr);
  try {
    const res = await convertCheckpoint(dir, target, {
      signal: ac.signal,
      scaleDtype,
      keepUnsupported: values['keep-unsupported'] === true,
      onProgress: progress?.update,
    });
    progress?.stop();
    for (const w of res.warnings) err(`marlin: warning: ${w}`);
    out(
      `wrote ${res.out} (${mb(res.bytesWritten)}): ${res.converted.length} layers converted, ${res.passthrough.length} tensors copied through` +
        (res.unconverted.length > 0 ? `, ${res.unconverted.length} left unconverted` : ''),
    );
    for (const u of res.unconverted) err(`  unconverted: ${u.name}: ${u.reason}`);
    return 0;
  } catch (e) {
    if (e instanceof CancelledError && caught !== null) {
      progress?.stop();
      err(`marlin: ${e.code}: ${oneLine(e.message)}`);
      return SIGNAL_EXIT[caught];
    }
    throw e;
  } finally {
    progress?.stop();
    for (const [sig, f] of handlers) signals.off(sig, f);
  }
}

function makeProgress(stream: CliIo['stderr']): { update: (p: WriteProgress) => void; stop: () => void } {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: 'converting {bar} {percentage}% | {done}/{totalMb} | {index}/{count} {name}',
        hideCursor: true,
        stream: stream as NodeJS.WritableStream,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update: (p) => {
        const payload = {
          done: mb(p.bytesDone),
          totalMb: mb(p.bytesTotal),
          index: p.index,
          count: p.count,
          name: p.name,
        };
        if (!started) {
          bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload);
          started = true;
        } else bar.update(p.bytesDone, payload);
      },
      stop: () => {
        if (started) bar.stop();
        started = false;
      },
    };
  }
  let last = 0;
  return {
    update: (p) => {
      if (p.index === last) return;
      last = p.index;
      stream.write(
        `[${p.index}/${p.count}] ${p.phase === 'convert' ? 'converted' : 'copying'} ${p.name} (${mb(p.bytesDone)} / ${mb(p.bytesTotal)})\n`,
      );
    },
    stop: () => undefined,
  };
}

async function doctor(args: readonly string[], out: (s: string) => void): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, 0, 'marlin doctor [--json]');
  const report = await runDoctor();
  out(values.json ? JSON.stringify(doctorJson(report), null, 2) : formatDoctor(report));
  return 0;
}

function build(args: readonly string[], out: (s: string) => void): number {
  const usage = 'marlin build <addon> [--archs 80;90a] [--jobs N] [--dry-run]';
  const { values, positionals } = parse(
    args,
    { archs: { type: 'string' }, jobs: { type: 'string' }, 'dry-run': { type: 'boolean' } },
    1,
    usage,
  );
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) {
    throw new UsageError(`--jobs must be a positive integer, got "${String(values.jobs)}".`);
  }
  const archs = values.archs as string | undefined;
  if (
    archs !== undefined &&
    !/^\s*\d+[a-z]?(-real|-virtual)?(\s*[;,\s]\s*\d+[a-z]?(-real|-virtual)?)*\s*$/.test(archs)
  ) {
    throw new UsageError(`--archs must list SM versions like "80;90a" (or "80-virtual" for PTX), got "${archs}".`);
  }
  buildAddon(positionals[0]!, { archs, jobs, dryRun: values['dry-run'] === true, log: out });
  return 0;
}
