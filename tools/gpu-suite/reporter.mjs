// node:test reporter that tallies results and writes a JSON summary ($OUT/gpu-suite-summary.json when OUT is set).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export default async function* summaryReporter(source) {
  const s = { pass: 0, fail: 0, skip: 0, todo: 0, durationMs: 0, failures: [], skipped: [] };
  for await (const event of source) {
    if (event.type === 'test:pass' && event.data.skip) {
      s.skip++;
      if (s.skipped.length < 5) s.skipped.push({ name: event.data.name, reason: event.data.skip });
    } else if (event.type === 'test:pass' && event.data.details?.type !== 'suite') {
      if (event.data.skip) {
        s.skip++;
        if (s.skipped.length < 5) s.skipped.push({ name: event.data.name, reason: event.data.skip });
      } else if (event.data.todo) s.todo++;
      else s.pass++;
    } else if (event.type === 'test:fail' && event.data.details?.type !== 'suite') {
      s.fail++;
      const err = event.data.details?.error;
      s.failures.push({
        name: event.data.name,
        file: event.data.file,
        error: String(err?.cause?.message ?? err?.message ?? err),
      });
    } else if (event.type === 'test:diagnostic' && /^duration_ms/.test(event.data.message)) {
      s.durationMs = Math.max(s.durationMs, Number(event.data.message.split(' ')[1]));
    }
  }
  const status = s.fail === 0 && s.pass > 0 ? 'PASS' : s.fail > 0 ? 'FAIL' : 'NOTHING RAN';
  const lines = [`\nGPU suite: ${status}  pass ${s.pass}  fail ${s.fail}  skip ${s.skip}`];
  for (const f of s.failures.slice(0, 20)) lines.push(`  FAIL ${f.name}: ${f.error.split('\n')[0]}`);
  if (s.skip > 0 && s.skipped[0]) lines.push(`  skipped because: ${s.skipped[0].reason}`);
  if (process.env.OUT) {
    const path = join(process.env.OUT, 'gpu-suite-summary.json');
    writeFileSync(path, `${JSON.stringify({ status, ...s, date: new Date().toISOString() }, null, 2)}\n`);
    lines.push(`  summary written to ${path}`);
  }
  yield `${lines.join('\n')}\n`;
}
