/**
 * Opening checkpoint inputs safely: regular files only. Opening a FIFO for reading blocks until a writer appears, and a
 * device such as /dev/zero never ends, so every input is opened non-blocking and checked with fstat on the open
 * descriptor (no race between a check and the open) before a byte is read.
 */

import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, open, readlink, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { IoError } from '../errors/index.js';

/** What a non-regular file is, for messages. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * Opens `path` for reading if it is a regular file (symbolic links are followed).
 * @returns the handle and its size.
 * @throws IoError (with the errno code in `details.errno`) when it cannot be opened or is not a regular file.
 */
export async function openRegularFile(path: string, what: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: open() of a FIFO returns at once instead of waiting for a writer; no effect on regular files.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw new IoError(`Cannot open ${what} ${path}: ${(cause as Error).message}.`, {
      fix: 'check that the path exists and is readable.',
      details: { path, errno: (cause as NodeJS.ErrnoException).code },
      cause,
    });
  }
  let st: Stats;
  try {
    st = await fh.stat();
  } catch (cause) {
    await fh.close().catch(() => undefined);
    throw new IoError(`Cannot stat ${what} ${path}: ${(cause as Error).message}.`, { fix: 'check the disk.', cause });
  }
  if (!st.isFile()) {
    await fh.close().catch(() => undefined);
    throw new IoError(`${what} ${path} is ${fileKind(st)}, not a regular file.`, {
      fix: 'pass regular files: checkpoints are read by offset, which pipes and devices cannot do.',
      details: { path },
    });
  }
  return { fh, size: st.size };
}

/** Reads a whole regular file as UTF-8 (config and index JSON), or null when it does not exist. */
export async function readRegularText(path: string, what: string): Promise<string | null> {
  let opened: { fh: FileHandle; size: number };
  try {
    opened = await openRegularFile(path, what);
  } catch (err) {
    if (err instanceof IoError && err.details['errno'] === 'ENOENT') return null;
    throw err;
  }
  try {
    return await opened.fh.readFile('utf8');
  } catch (cause) {
    throw new IoError(`Cannot read ${what} ${path}: ${(cause as Error).message}.`, {
      fix: 'check permissions and the disk.',
      cause,
    });
  } finally {
    await opened.fh.close().catch(() => undefined);
  }
}

/**
 * The file an output path will be written to: the path itself, or, for a symbolic link (dangling or not), the file at
 * the end of its chain, so that the link is written through rather than replaced. The output is written to a temporary
 * file and renamed over that path, which is only safe over a regular file or nothing: a device, a FIFO, a directory
 * or a socket is refused (renaming over /dev/full as root would replace the device node).
 * @throws IoError when the path (or the end of its link chain) exists and is not a regular file, or links loop.
 */
export async function resolveOutputPath(path: string): Promise<string> {
  let cur = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    let st: Stats;
    try {
      st = await lstat(cur);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return cur;
      throw new IoError(`Cannot write the output ${path}: ${(cause as Error).message}.`, {
        fix: 'check that its directory exists and is writable.',
        cause,
      });
    }
    if (st.isFile()) return cur;
    if (!st.isSymbolicLink()) {
      throw new IoError(
        `Cannot write the output ${path}: it is ${fileKind(st)}${cur === resolve(path) ? '' : ` (${cur})`}, not a regular file.`,
        {
          fix: 'write the packed checkpoint to a regular file path (a new file, or an existing file with --force).',
          details: { path, target: cur },
        },
      );
    }
    cur = resolve(dirname(cur), await readlink(cur));
  }
  throw new IoError(`Cannot write the output ${path}: too many levels of symbolic links.`, {
    fix: 'point the output at a regular file.',
    details: { path },
  });
}

/**
 * Makes way for a temporary output file: removes a regular file left at `path` by a killed run, and refuses anything
 * else there (a symbolic link would make the write land in its target).
 * @throws IoError when `path` exists and is not a regular file.
 */
export async function clearStaleTemp(path: string): Promise<void> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IoError(`Cannot write ${path}: ${(cause as Error).message}.`, { fix: 'check permissions.', cause });
  }
  if (!st.isFile()) {
    throw new IoError(`Cannot write the temporary file ${path}: it exists and is ${fileKind(st)}.`, {
      fix: `remove ${path} (a leftover of another run) and convert again.`,
      details: { path },
    });
  }
  await rm(path, { force: true });
}
