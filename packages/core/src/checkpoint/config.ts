/**
 * Quantization configs of the checkpoint formats we convert (docs/checkpoints.md; layouts in
 * /work/shared/docs/peers-and-formats.md section (c)):
 *
 * - GPTQ (AutoGPTQ / GPTQModel): `quantize_config.json` or `config.json["quantization_config"]` with quant_method "gptq".
 * - AWQ (AutoAWQ GEMM): quant_method "awq".
 * - compressed-tensors `pack-quantized` (llm-compressor): quant_method "compressed-tensors".
 *
 * Parsing only checks the config's own shape (FormatError when it is malformed). Whether a method, bit width or group
 * size can be converted is decided per layer by the planner, so `marlin inspect` can report it instead of failing.
 */
import { join } from 'node:path';
import { RE2JS } from 're2js';
import { FormatError } from '../errors/index.js';
import { readRegularText } from './files.js';

/** GPTQ `checkpoint_format`: v1 stores zero points minus one, v2 stores them as they are. */
export type GptqCheckpointFormat = 'gptq' | 'gptq_v2' | (string & {});

/** One entry of GPTQModel's `dynamic` map, in config order. */
export interface GptqDynamicRule {
  /** The key as written, e.g. `"+:.*\\.mlp\\..*"` or `"-:lm_head"`. */
  readonly pattern: string;
  /** "-:" rules leave matching modules unquantized; "+:" (or no prefix) rules override the fields below. */
  readonly exclude: boolean;
  readonly regex: NamePattern;
  readonly overrides: Readonly<{ bits?: number; groupSize?: number; descAct?: boolean; sym?: boolean }>;
}

export interface GptqConfig {
  readonly method: 'gptq';
  readonly bits: number;
  /** Rows per group; -1 = per-channel. */
  readonly groupSize: number;
  readonly descAct: boolean;
  readonly sym: boolean;
  readonly checkpointFormat: GptqCheckpointFormat;
  /** True when the checkpoint also quantized lm_head. */
  readonly lmHead: boolean;
  readonly dynamic: readonly GptqDynamicRule[];
  readonly source: string;
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface AwqConfig {
  readonly method: 'awq';
  readonly bits: number;
  readonly groupSize: number;
  readonly zeroPoint: boolean;
  /** Lower-cased `version`: "gemm" is the only layout converted. */
  readonly version: string;
  /** Modules kept in full precision (AutoAWQ: a module is skipped when its name contains one of these). */
  readonly modulesToNotConvert: readonly string[];
  readonly source: string;
  readonly raw: Readonly<Record<string, unknown>>;
}

/** `weights` of one compressed-tensors config group. */
export interface CtWeightScheme {
  readonly numBits: number;
  /** "int" or "float". */
  readonly type: string;
  readonly symmetric: boolean;
  /** "group", "channel", "tensor", "block", ... */
  readonly strategy: string;
  readonly groupSize: number | null;
  /** Normalised: "dynamic" -> "group", "static" -> "weight"; null when absent or false. */
  readonly actorder: 'group' | 'weight' | null;
  readonly dynamic: boolean;
}

export interface CtGroup {
  readonly name: string;
  /** Layer names, "re:" regexes, or module class names such as "Linear". */
  readonly targets: readonly string[];
  readonly weights: CtWeightScheme | null;
  /** True when activations are quantized too (W8A8, W4A8...), which Marlin W4A16 does not do. */
  readonly quantizesActivations: boolean;
  /** Group-level `format` override, if any. */
  readonly format: string | null;
}

export interface CompressedTensorsConfig {
  readonly method: 'compressed-tensors';
  /** Top-level `format`, e.g. "pack-quantized". */
  readonly format: string;
  readonly quantizationStatus: string | null;
  readonly groups: readonly CtGroup[];
  /** Names and "re:" regexes of modules left unquantized. */
  readonly ignore: readonly string[];
  readonly source: string;
  readonly raw: Readonly<Record<string, unknown>>;
}

/**
 * Hugging Face FP8 (`quant_method: "fp8"`, transformers' fine-grained FP8 as DeepSeek-V3 / Qwen3-FP8 ship it): each
 * linear holds `weight` (F8_E4M3 [N, K]) and `weight_scale_inv` ([ceil(N / bn), ceil(K / bk)], a multiplier despite
 * its name) for `weight_block_size` [bn, bk].
 */
export interface Fp8Config {
  readonly method: 'fp8';
  /** [rows along N, rows along K] of one scale block, or null when the config gives none. */
  readonly weightBlockSize: readonly [number, number] | null;
  /** "e4m3" (the only format converted) or whatever `fmt` says. */
  readonly fmt: string;
  /** `activation_scheme` ("dynamic" or "static"): activation quantization, ignored (W8A16). */
  readonly activationScheme: string | null;
  /** Modules kept in full precision (matched like AutoAWQ's: a module whose name contains one of these). */
  readonly modulesToNotConvert: readonly string[];
  readonly source: string;
  readonly raw: Readonly<Record<string, unknown>>;
}

/** Any quantization method we know by name but do not convert (bitsandbytes, hqq, ...). */
export interface OtherQuantConfig {
  readonly method: 'other';
  readonly quantMethod: string;
  readonly source: string;
  readonly raw: Readonly<Record<string, unknown>>;
}

export type QuantizationConfig = GptqConfig | AwqConfig | CompressedTensorsConfig | Fp8Config | OtherQuantConfig;

/**
 * Reads the quantization config of a checkpoint directory: `config.json["quantization_config"]` first, then
 * `quantize_config.json` (AutoGPTQ) and `quant_config.json` (AutoAWQ).
 * @returns the parsed config, or null when the directory holds none (an unquantized checkpoint).
 * @throws FormatError when a config file is not JSON or a field has the wrong type; IoError when it cannot be read.
 */
export async function readQuantizationConfig(dir: string): Promise<QuantizationConfig | null> {
  const configJson = await readJson(join(dir, 'config.json'));
  const qc = configJson?.['quantization_config'];
  if (qc !== undefined && qc !== null) {
    return parseQuantizationConfig(
      expectObject(qc, 'config.json', 'quantization_config'),
      `${join(dir, 'config.json')} quantization_config`,
    );
  }
  for (const file of ['quantize_config.json', 'quant_config.json']) {
    const json = await readJson(join(dir, file));
    if (json) {
      const defaultMethod = file === 'quantize_config.json' ? 'gptq' : 'awq';
      return parseQuantizationConfig({ quant_method: defaultMethod, ...json }, join(dir, file));
    }
  }
  return null;
}

/**
 * Parses a quantization config object (the value of `quantization_config`).
 * @param source where it came from, quoted in error messages.
 */
export function parseQuantizationConfig(raw: Record<string, unknown>, source: string): QuantizationConfig {
  const method = typeof raw['quant_method'] === 'string' ? raw['quant_method'].toLowerCase() : undefined;
  if (method === undefined) {
    throw new FormatError(`${source} has no "quant_method".`, {
      fix: 'add "quant_method": "gptq", "awq" or "compressed-tensors" to the quantization config.',
      details: { source },
    });
  }
  const f = new Fields(raw, source);
  switch (method) {
    case 'gptq':
      return {
        method: 'gptq',
        bits: f.int('bits', 4),
        groupSize: f.int('group_size', 128),
        descAct: f.bool('desc_act', false),
        sym: f.bool('sym', true),
        checkpointFormat: f.str('checkpoint_format', 'gptq').toLowerCase(),
        lmHead: f.bool('lm_head', false),
        dynamic: parseDynamic(raw['dynamic'], source),
        source,
        raw,
      };
    case 'awq':
      return {
        method: 'awq',
        bits: f.int('bits', f.int('w_bit', 4)),
        groupSize: f.int('group_size', f.int('q_group_size', 128)),
        zeroPoint: f.bool('zero_point', true),
        version: f.str('version', 'gemm').toLowerCase(),
        modulesToNotConvert: f.strList('modules_to_not_convert'),
        source,
        raw,
      };
    case 'compressed-tensors':
      return parseCompressedTensors(raw, f, source);
    case 'fp8':
      return {
        method: 'fp8',
        weightBlockSize: parseBlockSize(raw['weight_block_size'], source),
        fmt: f.str('fmt', 'e4m3').toLowerCase(),
        activationScheme: raw['activation_scheme'] === undefined ? null : f.str('activation_scheme', ''),
        modulesToNotConvert: f.strList('modules_to_not_convert'),
        source,
        raw,
      };
    default:
      return { method: 'other', quantMethod: method, source, raw };
  }
}

function parseCompressedTensors(raw: Record<string, unknown>, f: Fields, source: string): CompressedTensorsConfig {
  const groupsRaw =
    raw['config_groups'] === undefined ? {} : expectObject(raw['config_groups'], source, 'config_groups');
  const groups: CtGroup[] = [];
  for (const [name, g] of Object.entries(groupsRaw)) {
    const gObj = expectObject(g, source, `config_groups.${name}`);
    const gf = new Fields(gObj, `${source} config_groups.${name}`);
    let weights: CtWeightScheme | null = null;
    if (gObj['weights'] !== undefined && gObj['weights'] !== null) {
      const w = expectObject(gObj['weights'], source, `config_groups.${name}.weights`);
      const wf = new Fields(w, `${source} config_groups.${name}.weights`);
      const ao = w['actorder'];
      let actorder: 'group' | 'weight' | null;
      if (ao === null || ao === undefined || ao === false) actorder = null;
      else if (ao === true || ao === 'group' || ao === 'dynamic') actorder = 'group';
      else if (ao === 'weight' || ao === 'static') actorder = 'weight';
      else {
        throw new FormatError(`${source} config_groups.${name}.weights.actorder is ${JSON.stringify(ao)}.`, {
          fix: 'use null, "group" (alias "dynamic") or "weight" (alias "static").',
          details: { source },
        });
      }
      weights = {
        numBits: wf.int('num_bits', 8),
        type: wf.str('type', 'int').toLowerCase(),
        symmetric: wf.bool('symmetric', true),
        strategy: wf.str('strategy', 'tensor').toLowerCase(),
        groupSize: w['group_size'] === null || w['group_size'] === undefined ? null : wf.int('group_size', 0),
        actorder,
        dynamic: w['dynamic'] === true || w['dynamic'] === 'local',
      };
    }
    const ia = gObj['input_activations'];
    groups.push({
      name,
      targets: gf.strList('targets'),
      weights,
      quantizesActivations: ia !== undefined && ia !== null,
      format: typeof gObj['format'] === 'string' ? gObj['format'] : null,
    });
  }
  return {
    method: 'compressed-tensors',
    format: f.str('format', 'dense'),
    quantizationStatus: typeof raw['quantization_status'] === 'string' ? raw['quantization_status'] : null,
    groups,
    ignore: f.strList('ignore'),
    source,
    raw,
  };
}

function parseBlockSize(v: unknown, source: string): readonly [number, number] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new FormatError(`${source}: "weight_block_size" is ${JSON.stringify(v)}, expected [rows, columns].`, {
      fix: 'repair the quantization config: FP8 block checkpoints use [128, 128].',
      details: { source, field: 'weight_block_size' },
    });
  }
  return [v[0], v[1]];
}

function parseDynamic(raw: unknown, source: string): GptqDynamicRule[] {
  if (raw === undefined || raw === null) return [];
  const obj = expectObject(raw, source, 'dynamic');
  const rules: GptqDynamicRule[] = [];
  for (const [pattern, value] of Object.entries(obj)) {
    const exclude = pattern.startsWith('-:');
    const body = exclude || pattern.startsWith('+:') ? pattern.slice(2) : pattern;
    const v = expectObject(value ?? {}, source, `dynamic["${pattern}"]`);
    const vf = new Fields(v, `${source} dynamic["${pattern}"]`);
    const overrides: { bits?: number; groupSize?: number; descAct?: boolean; sym?: boolean } = {};
    if (v['bits'] !== undefined) overrides.bits = vf.int('bits', 0);
    if (v['group_size'] !== undefined) overrides.groupSize = vf.int('group_size', 0);
    if (v['desc_act'] !== undefined) overrides.descAct = vf.bool('desc_act', false);
    if (v['sym'] !== undefined) overrides.sym = vf.bool('sym', true);
    rules.push({ pattern, exclude, regex: pythonRegex(body, `${source} dynamic`), overrides });
  }
  return rules;
}

/** A compiled module-name pattern (`re.match` semantics). */
export interface NamePattern {
  /** The pattern as written in the config. */
  readonly source: string;
  /** True when the pattern matches a prefix of `name` (Python `re.match`). */
  test(name: string): boolean;
}

/**
 * Compiles a Python `re` pattern for `re.match` semantics (anchored at the start, not at the end) with RE2 (re2js),
 * whose matching time is linear in the name: a config pattern such as `(a|aa)*b` cannot hang a backtracking engine.
 * RE2 reads Python's `(?P<name>...)` and inline flags such as `(?i)` as they are; backreferences and lookaround have
 * no linear-time match, so they are refused.
 * @throws FormatError when the pattern is not a valid regular expression, or needs backreferences or lookaround.
 */
export function pythonRegex(pattern: string, where: string): NamePattern {
  let re: RE2JS;
  try {
    re = RE2JS.compile(`^(?:${pattern})`);
  } catch (cause) {
    throw new FormatError(
      `${where}: ${JSON.stringify(pattern)} is not a valid regular expression (${(cause as Error).message}).`,
      {
        fix: 'fix the pattern in the quantization config (RE2 syntax: no backreferences or lookaround).',
        cause,
      },
    );
  }
  return { source: pattern, test: (name) => re.test(name) };
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  const text = await readRegularText(path, 'config file');
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new FormatError(`${path} is not valid JSON (${(cause as Error).message}).`, {
      fix: 'repair or download the file again.',
      details: { path },
    });
  }
  return expectObject(json, path, '(top level)');
}

function expectObject(v: unknown, source: string, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new FormatError(`${source}: ${field} is ${JSON.stringify(v)}, not an object.`, {
      fix: 'repair the quantization config (see docs/checkpoints.md for the fields read).',
      details: { source, field },
    });
  }
  return v as Record<string, unknown>;
}

/** Typed field access with clear errors. */
class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly source: string,
  ) {}

  private bad(key: string, want: string): never {
    throw new FormatError(`${this.source}: "${key}" is ${JSON.stringify(this.obj[key])}, expected ${want}.`, {
      fix: 'repair the quantization config (see docs/checkpoints.md for the fields read).',
      details: { source: this.source, field: key },
    });
  }

  int(key: string, dflt: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.bad(key, 'an integer');
    return v as number;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v as boolean;
  }

  str(key: string, dflt: string): string {
    const v = this.obj[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v as string;
  }

  strList(key: string): string[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) this.bad(key, 'a list of strings');
    return v as string[];
  }
}
