/**
 * `marlin doctor`: platform facts plus, for every GPU addon package that can be found (dense, fp8, sparse, moe, and
 * any other addon defined in this process), where it was loaded from and what its `probe()` reports (binary path and
 * the paths tried, driver, devices). Print it in bug reports.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { registeredAddons } from '../addon/kit.js';

/** The addon packages doctor looks for, whether or not they are installed. */
export const KNOWN_ADDONS: readonly string[] = ['@marlin/dense', '@marlin/fp8', '@marlin/sparse', '@marlin/moe'];

/** What doctor found for one addon package. */
export interface AddonReport {
  readonly package: string;
  /** Whether the package could be imported. */
  readonly installed: boolean;
  /** Where it was found: a resolved file, a workspace folder, or 'this process' for an addon defined in-process. */
  readonly from: string | null;
  /** Why it could not be imported or probed, or null. */
  readonly error: string | null;
  /** What its probe() returned (binaryPath, attempts, driver, devices, ...), or null. */
  readonly probe: unknown;
}

/** The facts `marlin doctor` gathers. */
export interface DoctorReport {
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  /** glibc version from process.report, or null (musl, or not Linux). */
  readonly glibc: string | null;
  /** Every addon package found or looked for (installed ones first). */
  readonly addons: readonly AddonReport[];
  /** The @marlin/dense entry of `addons` (kept for scripts that read it). */
  readonly dense: { readonly installed: boolean; readonly error: string | null };
  /** @marlin/dense's probe(), or null. */
  readonly probe: unknown;
}

function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
}

/** This file's location (ESM or CJS build). */
function here(): string {
  return typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
}

/** The folder holding pnpm-workspace.yaml above `from`, or null. */
function workspaceRoot(from: string): string | null {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

interface WorkspacePackage {
  readonly dir: string;
  /** The ESM entry file, whether or not it exists (built). */
  readonly entry: string;
}

/** A package of this repository's workspace (packages/<x>/package.json named `name`), for doctor run in a clone. */
function workspacePackage(name: string, starts: readonly string[]): WorkspacePackage | null {
  for (const start of starts) {
    const root = workspaceRoot(start);
    if (root === null) continue;
    const folder = join(root, 'packages');
    if (!existsSync(folder)) continue;
    for (const d of readdirSync(folder)) {
      const pkgPath = join(folder, d, 'package.json');
      if (!existsSync(pkgPath)) continue;
      try {
        const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { name?: string; module?: string };
        if (pkg.name === name) return { dir: join(folder, d), entry: join(folder, d, pkg.module ?? 'dist/index.js') };
      } catch {
        // A malformed package.json is not the package we look for.
      }
    }
  }
  return null;
}

type Module = Record<string, unknown>;

/**
 * Imports an addon package: by name from this package's location, then from the working directory, then from the
 * workspace of a clone (where the addons are siblings, not dependencies, of @marlin/core).
 */
async function importAddon(name: string): Promise<{ mod: Module; from: string | null } | { error: string }> {
  let first: unknown;
  try {
    const mod = (await import(name)) as Module;
    let from: string | null = null;
    try {
      from = createRequire(here()).resolve(name);
    } catch {
      // Resolvable by import only (ESM-only package): where it came from is not known.
    }
    return { mod, from };
  } catch (e) {
    first = e;
  }
  try {
    const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(name);
    return { mod: (await import(pathToFileURL(resolved).href)) as Module, from: resolved };
  } catch {
    // not in the working directory's node_modules either
  }
  const ws = workspacePackage(name, [process.cwd(), dirname(here())]);
  if (ws !== null) {
    if (!existsSync(ws.entry)) {
      return { error: `found in the workspace at ${ws.dir} but not built (run pnpm --filter ${name} build)` };
    }
    try {
      return { mod: (await import(pathToFileURL(ws.entry).href)) as Module, from: ws.entry };
    } catch (e) {
      return { error: firstLine(e) };
    }
  }
  return { error: firstLine(first) };
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0] ?? msg;
}

async function probeOf(probe: unknown): Promise<{ probe: unknown; error: string | null }> {
  if (typeof probe !== 'function') return { probe: null, error: 'it has no probe() export' };
  try {
    return { probe: await (probe as () => unknown)(), error: null };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { probe: null, error: `${e.code ?? 'Error'}: ${e.message ?? String(err)}` };
  }
}

/** Runs the diagnosis of `addons` (default: every known addon). Never throws: failures are part of the report. */
export async function runDoctor(addons: string | readonly string[] = KNOWN_ADDONS): Promise<DoctorReport> {
  const base = { platform: process.platform, arch: process.arch, node: process.version, glibc: glibcVersion() };
  const names = typeof addons === 'string' ? [addons] : [...addons];
  const reports: AddonReport[] = [];
  for (const name of names) {
    const r = await importAddon(name);
    if ('error' in r) {
      reports.push({ package: name, installed: false, from: null, error: r.error, probe: null });
      continue;
    }
    reports.push({ package: name, installed: true, from: r.from, ...(await probeOf(r.mod['probe'])) });
  }
  // Addons defined in this process that doctor does not know by name (a third-party addon built on the kit).
  for (const a of registeredAddons()) {
    if (reports.some((r) => r.package === a.packageName)) continue;
    reports.push({ package: a.packageName, installed: true, from: 'this process', ...(await probeOf(a.probe)) });
  }
  reports.sort((a, b) => Number(b.installed) - Number(a.installed));
  const dense = reports.find((r) => r.package === '@marlin/dense');
  return {
    ...base,
    addons: reports,
    dense: { installed: dense?.installed ?? false, error: dense?.error ?? null },
    probe: dense?.probe ?? null,
  };
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

/** Human-readable lines: platform, then one block per addon package (installed ones with their probe). */
export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `platform   ${r.platform}-${r.arch}`,
    `node       ${r.node}`,
    `glibc      ${r.glibc ?? 'not found (musl or non-Linux: the prebuilt addons need glibc >= 2.34)'}`,
  ];
  const missing = r.addons.filter((a) => !a.installed);
  for (const a of r.addons) {
    if (!a.installed) continue;
    lines.push(`${a.package}  installed${a.from ? ` (${a.from})` : ''}${a.error ? `, but: ${a.error}` : ''}`);
    if (a.probe !== null && typeof a.probe === 'object') {
      for (const [k, v] of Object.entries(plain(a.probe) as Record<string, unknown>)) {
        lines.push(`  ${k.padEnd(18)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
      }
    } else if (a.probe !== null) {
      lines.push(`  probe: ${String(a.probe)}`);
    }
  }
  for (const a of missing) {
    lines.push(`${a.package}  not installed (${a.error})`);
    lines.push(
      `           for its GPU kernels: npm install ${a.package} (the CPU reference in @marlin/core needs none)`,
    );
  }
  return lines.join('\n');
}
