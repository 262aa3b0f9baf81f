/** Run metadata: the commit, the result file names. */
import { execFileSync } from 'node:child_process';

export interface CommitInfo {
  readonly commit: string;
  readonly source: 'MARLIN_COMMIT' | 'git' | 'unknown';
}

/**
 * The commit under test: $MARLIN_COMMIT (set by the GPU bundle, which has no .git), else `git rev-parse HEAD` in
 * `cwd` (with "-dirty" when the work tree has changes), else "unknown".
 */
export function commitInfo(env: NodeJS.ProcessEnv, cwd: string): CommitInfo {
  const fromEnv = env['MARLIN_COMMIT']?.trim();
  if (fromEnv) return { commit: fromEnv, source: 'MARLIN_COMMIT' };
  try {
    const opts = {
      cwd,
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
    };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim().length > 0;
    return { commit: dirty ? `${head}-dirty` : head, source: 'git' };
  } catch {
    return { commit: 'unknown', source: 'unknown' };
  }
}

/** First 7 hex digits of a commit ("unknown" stays as is; a "-dirty" suffix is kept). */
export function shortCommit(commit: string): string {
  const m = /^([0-9a-f]{7,40})(-dirty)?$/i.exec(commit);
  if (!m) return slug(commit) || 'unknown';
  return `${m[1]!.slice(0, 7).toLowerCase()}${m[2] ?? ''}`;
}

/** Lower-case, [a-z0-9] runs joined by '-': "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3". */
export function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/**
 * Base name (no extension) of a variant's result: <file>-<gpu>[-quick|-partial], with <file> = dense (INT4),
 * dense-int8 or fp8 (protocol.ts RESULT_FILE). One current result per package variant and GPU kind: a new run
 * replaces the file (history is in git). Quick and subset runs get their own suffix so they never replace a
 * protocol result.
 */
export function resultBaseName(o: { file: string; gpu: string; kind: 'protocol' | 'quick' | 'partial' }): string {
  return `${o.file}-${slug(o.gpu) || 'gpu'}${o.kind === 'protocol' ? '' : `-${o.kind}`}`;
}
