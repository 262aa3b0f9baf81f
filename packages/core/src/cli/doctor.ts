/**
 * `marlin doctor`: platform facts plus what the optional GPU addon's `probe()` reports. Print it in bug reports.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The facts `marlin doctor` gathers. */
export interface DoctorReport {
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  /** glibc version from process.report, or null (musl, or not Linux). */
  readonly glibc: string | null;
  /** Whether @marlin/dense could be imported, and from where. */
  readonly dense: { readonly installed: boolean; readonly error: string | null };
  /** What @marlin/dense's probe() returned (driver, devices, ...), or null. */
  readonly probe: unknown;
}

function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
}

/** Imports the optional addon package, from this package's location first, then from the working directory. */
async function importOptional(name: string): Promise<Record<string, unknown>> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch (first) {
    try {
      const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(name);
      return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
    } catch {
      throw first;
    }
  }
}

/** Runs the diagnosis. Never throws: failures are part of the report. */
export async function runDoctor(addon = '@marlin/dense'): Promise<DoctorReport> {
  const base = { platform: process.platform, arch: process.arch, node: process.version, glibc: glibcVersion() };
  let mod: Record<string, unknown>;
  try {
    mod = await importOptional(addon);
  } catch (err) {
    return { ...base, dense: { installed: false, error: (err as Error).message.split('\n')[0] }, probe: null };
  }
  const probe = mod['probe'];
  if (typeof probe !== 'function') {
    return { ...base, dense: { installed: true, error: `${addon} has no probe() export` }, probe: null };
  }
  try {
    return { ...base, dense: { installed: true, error: null }, probe: await (probe as () => unknown)() };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return {
      ...base,
      dense: { installed: true, error: `${e.code ?? 'Error'}: ${e.message ?? String(err)}` },
      probe: null,
    };
  }
}

function plain(v: unknown): unknown {
  if (v instanceof Error) {
    const e = v as Error & { code?: string };
    return e.code ? `${e.code}: ${e.message}` : e.message;
  }
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** JSON-safe form of the report (errors as "CODE: message"). */
export function doctorJson(r: DoctorReport): unknown {
  return plain(r);
}

/** Human-readable lines. */
export function formatDoctor(r: DoctorReport, addon = '@marlin/dense'): string {
  const lines = [
    `platform   ${r.platform}-${r.arch}`,
    `node       ${r.node}`,
    `glibc      ${r.glibc ?? 'not found (musl or non-Linux: the prebuilt addons need glibc >= 2.34)'}`,
  ];
  if (!r.dense.installed) {
    lines.push(`${addon}  not installed (${r.dense.error})`);
    lines.push(
      `           install it for GPU kernels: npm install ${addon} (the CPU reference in @marlin/core works without it)`,
    );
    return lines.join('\n');
  }
  lines.push(`${addon}  installed${r.dense.error ? `, but: ${r.dense.error}` : ''}`);
  if (r.probe !== null && typeof r.probe === 'object') {
    for (const [k, v] of Object.entries(plain(r.probe) as Record<string, unknown>)) {
      lines.push(`  ${k.padEnd(18)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
    }
  } else if (r.probe !== null) {
    lines.push(`  probe: ${String(r.probe)}`);
  }
  return lines.join('\n');
}
