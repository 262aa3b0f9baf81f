#!/usr/bin/env node
// Checks a platform package's .node against what its package.json states (config.glibc, config.sm, config.ptx,
// config.budgetMiB): highest GLIBC_ symbol version needed <= the floor, NEEDED has no CUDA toolkit library (static
// cudart: the user's machine needs only the driver), the fatbin's SASS / PTX targets equal the declared ones, every
// compiled unit carries every target, every image is compressed (-compress-mode=size), and the size is within budget.
// Reads the ELF itself (no binutils or cuobjdump needed).
// Usage: node tools/pack/check-binary.mjs <platform package folder> [--json]
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Libraries a Node addon may need on any glibc system; anything else (libcudart, libcublas...) is refused. */
const ALLOWED_NEEDED = /^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so(\.\d+)*$/;

export function readElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      nameOff: buf.readUInt32LE(o),
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 0x18)),
      size: Number(buf.readBigUInt64LE(o + 0x20)),
      link: buf.readUInt32LE(o + 0x28),
    });
  }
  const cstr = (off) => buf.toString('latin1', off, buf.indexOf(0, off));
  const shstr = sections[shstrndx];
  for (const s of sections) s.name = cstr(shstr.offset + s.nameOff);
  const byName = (n) => sections.find((s) => s.name === n);

  // DT_NEEDED entries of .dynamic (16-byte entries: tag, value), names in the linked string table.
  const needed = [];
  const dyn = byName('.dynamic');
  if (dyn) {
    const strtab = sections[dyn.link];
    for (let o = dyn.offset; o < dyn.offset + dyn.size; o += 16) {
      const tag = buf.readBigInt64LE(o);
      if (tag === 0n) break;
      if (tag === 1n) needed.push(cstr(strtab.offset + Number(buf.readBigUInt64LE(o + 8))));
    }
  }

  // Version needs (.gnu.version_r): per library a chain of Vernaux entries naming GLIBC_2.x, GLIBCXX_3.4.x, ...
  const versions = [];
  const vr = byName('.gnu.version_r');
  if (vr) {
    const strtab = sections[vr.link];
    let o = vr.offset;
    for (;;) {
      const cnt = buf.readUInt16LE(o + 2);
      const file = cstr(strtab.offset + buf.readUInt32LE(o + 4));
      let a = o + buf.readUInt32LE(o + 8);
      for (let i = 0; i < cnt; i++) {
        versions.push({ file, name: cstr(strtab.offset + buf.readUInt32LE(a + 8)) });
        a += buf.readUInt32LE(a + 12);
      }
      const next = buf.readUInt32LE(o + 12);
      if (next === 0) break;
      o += next;
    }
  }

  // .nv_fatbin: concatenated fatbins (header: magic 0xBA55ED50, u16 version, u16 header size, u64 size), each a
  // list of entries (u16 kind: 1 PTX, 2 ELF/SASS; u32 header size; u64 payload size; u32 arch at +28; flags at +40,
  // bit 0x100000 = architecture-specific "a" target, bit 0x8000 = compressed; u64 uncompressed size at +56 when
  // compressed).
  const targets = new Map();
  const fb = byName('.nv_fatbin');
  if (fb) {
    let p = fb.offset;
    const end = fb.offset + fb.size;
    while (p + 16 <= end) {
      if (buf.readUInt32LE(p) !== 0xba55ed50) {
        p += 8; // alignment padding between fatbins
        continue;
      }
      const hs = buf.readUInt16LE(p + 6);
      const fs = Number(buf.readBigUInt64LE(p + 8));
      let q = p + hs;
      while (q < p + hs + fs) {
        const kind = buf.readUInt16LE(q);
        const ehs = buf.readUInt32LE(q + 4);
        const payload = Number(buf.readBigUInt64LE(q + 8));
        const arch = buf.readUInt32LE(q + 28);
        const flags = Number(buf.readBigUInt64LE(q + 40));
        const raw = Number(buf.readBigUInt64LE(q + 56));
        const key = `${kind === 1 ? 'ptx' : 'sass'}:${arch}${flags & 0x100000 ? 'a' : ''}`;
        const t = targets.get(key) ?? { entries: 0, compressed: 0, stored: 0, raw: 0 };
        t.entries++;
        if (flags & 0x8000) t.compressed++;
        t.stored += payload;
        t.raw += raw > 0 ? raw : payload;
        targets.set(key, t);
        q += ehs + payload;
      }
      p += hs + fs;
    }
  }
  return { needed, versions, targets, fatbinBytes: fb?.size ?? 0 };
}

function cmp(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Checks one platform package folder; returns { ok, problems, facts }. */
export function checkPlatformPackage(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const cfg = pkg.config ?? {};
  const binaryName = (pkg.files ?? []).find((f) => f.endsWith('.node'));
  const problems = [];
  if (!binaryName) return { ok: false, problems: [`${pkg.name}: "files" names no .node`], facts: {} };
  const path = join(dir, binaryName);
  const buf = readFileSync(path);
  const elf = readElf(buf);

  const floor = String(cfg.glibc ?? '').replace(/^[>=\s]+/, '');
  const glibc = elf.versions
    .map((v) => /^GLIBC_(\d+(?:\.\d+)+)$/.exec(v.name)?.[1])
    .filter(Boolean)
    .sort(cmp);
  const maxGlibc = glibc.at(-1) ?? null;
  if (!floor) problems.push('config.glibc is not set');
  else if (maxGlibc !== null && cmp(maxGlibc, floor) > 0) {
    const over = elf.versions.filter((v) => v.name.startsWith('GLIBC_') && cmp(v.name.slice(6), floor) > 0);
    problems.push(`needs GLIBC_${maxGlibc}, above the stated floor ${floor} (${over.map((v) => v.name).join(', ')})`);
  }
  const badNeeded = elf.needed.filter((n) => !ALLOWED_NEEDED.test(n));
  if (badNeeded.length > 0) {
    problems.push(
      `NEEDED ${badNeeded.join(', ')}: only libc/libstdc++/libgcc_s may be linked dynamically (CUDA runtime static)`,
    );
  }
  const declared = [...(cfg.sm ?? []).map((s) => `sass:${s}`), ...(cfg.ptx ?? []).map((s) => `ptx:${s}`)].sort();
  const found = [...elf.targets.keys()].sort();
  if (elf.fatbinBytes === 0) problems.push('no .nv_fatbin section: no device code');
  else if (JSON.stringify(declared) !== JSON.stringify(found)) {
    problems.push(`fatbin targets ${found.join(' ')} differ from config.sm/config.ptx ${declared.join(' ')}`);
  }
  // Every CUDA translation unit is compiled for every target: a target with fewer images lacks some kernels.
  const counts = [...elf.targets].map(([k, t]) => `${k} ${t.entries}`);
  if (new Set([...elf.targets.values()].map((t) => t.entries)).size > 1) {
    problems.push(`targets hold different numbers of images (${counts.join(', ')}): a unit missed a target`);
  }
  const plain = [...elf.targets].filter(([, t]) => t.compressed < t.entries).map(([k]) => k);
  if (plain.length > 0) problems.push(`uncompressed images for ${plain.join(' ')} (build with -compress-mode=size)`);
  const size = statSync(path).size;
  const budget = Number(cfg.budgetMiB ?? 20) * 2 ** 20;
  if (size > budget) {
    problems.push(`${binaryName} is ${(size / 2 ** 20).toFixed(1)} MiB, over the ${cfg.budgetMiB ?? 20} MiB budget`);
  }
  const facts = {
    package: pkg.name,
    binary: binaryName,
    sizeMiB: Number((size / 2 ** 20).toFixed(2)),
    budgetMiB: Number(cfg.budgetMiB ?? 20),
    maxGlibc,
    glibcFloor: floor,
    needed: elf.needed,
    fatbinMiB: Number((elf.fatbinBytes / 2 ** 20).toFixed(2)),
    targets: Object.fromEntries(
      [...elf.targets].map(([k, t]) => [
        k,
        { entries: t.entries, storedKiB: Math.round(t.stored / 1024), rawKiB: Math.round(t.raw / 1024) },
      ]),
    ),
  };
  return { ok: problems.length === 0, problems, facts };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = resolve(process.argv[2] ?? '.');
  const r = checkPlatformPackage(dir);
  if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else {
    const f = r.facts;
    console.log(
      `${f.package}: ${f.binary} ${f.sizeMiB} MiB (budget ${f.budgetMiB}), fatbin ${f.fatbinMiB} MiB, targets ${Object.keys(f.targets ?? {}).join(' ')}, GLIBC_${f.maxGlibc} (floor ${f.glibcFloor}), NEEDED ${f.needed?.join(' ')}`,
    );
    for (const p of r.problems) console.error(`  FAIL ${p}`);
  }
  process.exit(r.ok ? 0 : 1);
}
