import { describe, expect, it } from 'vitest';
import { type CusparseLtIo, findCusparseLt, sitePackages, versionText } from '../src/cusparselt.js';

/** A file system of the given files (folders implied by their paths). */
function fakeIo(files: readonly string[], over: Partial<CusparseLtIo> = {}): CusparseLtIo {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.split('/');
    for (let i = 2; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return {
    env: {},
    exists: (p) => files.includes(p) || dirs.has(p),
    list: (dir) => [
      ...new Set(
        [...files, ...dirs].filter((p) => p.startsWith(`${dir}/`)).map((p) => p.slice(dir.length + 1).split('/')[0]!),
      ),
    ],
    pythonPath: () => [],
    home: '/home/u',
    ...over,
  };
}

describe('finding cuSPARSELt', () => {
  it("finds PyTorch's bundled copy and its CUDA runtime under python3's site-packages", () => {
    const site = '/opt/venv/lib/python3.12/site-packages';
    const io = fakeIo(
      [`${site}/nvidia/cusparselt/lib/libcusparseLt.so.0`, `${site}/nvidia/cuda_runtime/lib/libcudart.so.12`],
      { pythonPath: () => ['', '/usr/lib/python312.zip', site] },
    );
    expect(findCusparseLt(io)).toEqual({
      paths: [`${site}/nvidia/cusparselt/lib/libcusparseLt.so.0`],
      deps: [`${site}/nvidia/cuda_runtime/lib/libcudart.so.12`],
    });
  });

  it('looks under the usual prefixes without python3, the explicit library first', () => {
    const io = fakeIo(
      [
        '/usr/local/lib/python3.11/dist-packages/torch/lib/libcusparseLt.so.0',
        '/home/u/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcusparseLt.so.0',
        '/env/lib/python3.12/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0',
        '/x/libcusparseLt.so.0.8.1.1',
        '/opt/conda/lib/python3.11/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0',
      ],
      { env: { MARLIN_CUSPARSELT_LIBRARY: '/x/libcusparseLt.so.0.8.1.1', VIRTUAL_ENV: '/env' } },
    );
    expect(findCusparseLt(io).paths).toEqual([
      '/x/libcusparseLt.so.0.8.1.1',
      '/env/lib/python3.12/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0',
      '/usr/local/lib/python3.11/dist-packages/torch/lib/libcusparseLt.so.0',
      '/opt/conda/lib/python3.11/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0',
      '/home/u/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcusparseLt.so.0',
    ]);
  });

  it('returns nothing (the harness then tries the soname) where nothing exists', () => {
    const io = fakeIo([], { env: { MARLIN_CUSPARSELT_LIBRARY: '/missing.so' }, pythonPath: () => ['/nowhere'] });
    expect(sitePackages(io)).toEqual([]);
    expect(findCusparseLt(io)).toEqual({ paths: [], deps: [] });
  });

  it('prints a version as cusparseLtGetProperty gives it', () => {
    expect(versionText(701)).toBe('0.7.1');
    expect(versionText(801)).toBe('0.8.1');
  });
});
