import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../src/args.js';
import { runBench } from '../src/run.js';
import { escapeXml, speedupSvg } from '../src/svg.js';
import { FakeNative } from './fake-native.js';

/** Minimal well-formedness check: balanced tags, quoted attributes, no raw '<' or stray '&' in text. */
function wellFormed(xml: string): string[] {
  const errs: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(xml); m !== null; m = tag.exec(xml)) {
    const text = xml.slice(last, m.index);
    if (text.includes('<')) errs.push(`unparsed markup before offset ${m.index}: ${text.slice(0, 40)}`);
    if (/&(?!amp;|lt;|gt;|quot;|apos;)/.test(text)) errs.push(`bare & in text at ${m.index}`);
    last = m.index + m[0].length;
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) errs.push(`</${name}> closes <${open}>`);
    } else if (!selfClose) {
      stack.push(name!);
    }
  }
  if (xml.slice(last).trim() !== '') errs.push('trailing content');
  if (stack.length > 0) errs.push(`unclosed: ${stack.join(', ')}`);
  return errs;
}

describe('speedup SVG', () => {
  it('is well-formed with one line per model and dtype plus targets and roofline bounds', async () => {
    const native = new FakeNative();
    const run = await runBench(parseBenchArgs(['--quick', '--no-eager', '--variants', 'int4'], {}, '/repo', '/repo'), {
      native,
      addons: { dense: { loaded: native.benchLoadAddon({ prefix: 'marlin_dense', path: '/repo/marlin_dense.node' }) } },
      commit: { commit: 'abc1234', source: 'git' },
      now: () => new Date('2026-11-24T10:00:00Z'),
      progress: () => {},
      eager: null,
    });
    const r = run.results[0]!;
    const svg = speedupSvg({ title: 'H100 <test> & "quotes"', blocks: r.blocks, mValues: r.options.mValues });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(wellFormed(svg)).toEqual([]);
    expect(svg).toContain('H100 &lt;test&gt; &amp; &quot;quotes&quot;');
    for (const label of [
      'Llama-3-8B fp16',
      'Llama-3-8B bf16',
      'Llama-3-70B fp16',
      'Llama-3-70B bf16',
      'Llama-3-70B target',
      'Llama-3-8B roofline bound',
    ]) {
      expect(svg).toContain(`>${label}</text>`);
    }
    // 4 speedup lines + 2 target steps + 2 roofline-bound lines.
    expect(svg.match(/<path /g)).toHaveLength(8);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('escapes XML metacharacters', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
  });
});
