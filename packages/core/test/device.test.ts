import { describe, expect, it } from 'vitest';
import { DeviceError, ErrorCode, Stream, Tensor } from '../src/index.js';

// Cross-addon tests (GPU suite) make a tensor or stream through a chosen addon's runtime; the option must reach the
// registry, not fall back to the first addon imported.
describe('Tensor / Stream through a named runtime', () => {
  it('an addon that is not registered is a coded NO_BINARY error naming it', () => {
    for (const make of [
      () => Tensor.empty([4], 'fp16', { addon: 'marlin_nope' }),
      () => Tensor.from(new Uint16Array(4), [4], 'fp16', { addon: 'marlin_nope' }),
      () => Stream.create({ addon: 'marlin_nope' }),
    ]) {
      let caught: unknown;
      try {
        make();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(DeviceError);
      expect((caught as DeviceError).code).toBe(ErrorCode.NO_BINARY);
      expect((caught as DeviceError).message).toContain('"marlin_nope" is not registered');
    }
  });
});
