/**
 * Opening checkpoint inputs safely: regular files only. Opening a FIFO for reading blocks until a writer appears, and a
 * device such as /dev/zero never ends, so every input is opened non-blocking and checked with fstat on the open
 * descriptor (no race between a check and the open) before a byte is read.
 */

import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
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
