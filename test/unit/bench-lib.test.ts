// The benchmark helpers: a wrong median, a biased case order or a tree that changes between runs
// would silently make every published number wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { median, pairedRuns, peakRssOfCommand, roundOrder, timeCommand } from '../../bench/lib/measure.ts';
import { listFiles, makeLargeFiles, makeTree, mutateFraction } from '../../bench/lib/tree.ts';
import { barChart, escapeXml, lineChart, logTicks, niceTicks } from '../../bench/lib/svg.ts';
import { loadResults, markdownTable, writeReport } from '../../bench/lib/report.ts';
import type { Result } from '../../bench/lib/report.ts';
import { describeMachine } from '../../bench/lib/env.ts';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-lib-test-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Relative path → sha256 of every file under `dir`. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await listFiles(dir)) {
    out.set(relative(dir, f), createHash('sha256').update(await readFile(f)).digest('hex'));
  }
  return out;
}

/**
 * Minimal XML well-formedness check: one root element, every tag closed in order, attributes
 * quoted, no raw `<` or bare `&` in text. Enough to catch what a string-built SVG gets wrong.
 */
function assertWellFormedXml(xml: string): { root: string; texts: string[] } {
  let body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  body = body.replace(/<!--[\s\S]*?-->/g, '');
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const stack: string[] = [];
  const texts: string[] = [];
  let root = '';
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt === -1 ? body.length : lt);
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(text), `bare & in text: ${text}`);
    if (text.trim() !== '') {
      assert.ok(stack.length > 0, `text outside the root element: ${text}`);
      texts.push(text);
    }
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    assert.ok(m, `malformed tag at ${lt}: ${body.slice(lt, lt + 80)}`);
    const [whole, closing, name, , selfClosing] = m;
    if (closing) {
      assert.equal(stack.pop(), name, `mismatched </${name}>`);
    } else {
      if (stack.length === 0) {
        assert.equal(root, '', 'more than one root element');
        root = name!;
      }
      if (!selfClosing) stack.push(name!);
    }
    i = lt + whole.length;
  }
  assert.deepEqual(stack, [], 'unclosed tags');
  return { root, texts };
}

void test('median handles odd and even counts and does not reorder its input', () => {
  const xs = [5, 1, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.throws(() => median([]));
});

void test('roundOrder rotates so every case takes every position', () => {
  assert.deepEqual(roundOrder(['A', 'B', 'C'], 0), ['A', 'B', 'C']);
  assert.deepEqual(roundOrder(['A', 'B', 'C'], 1), ['B', 'C', 'A']);
  assert.deepEqual(roundOrder(['A', 'B', 'C'], 5), ['C', 'A', 'B']);
  assert.deepEqual(roundOrder([], 3), []);
});

void test('pairedRuns alternates the cases, rotates each round and times only run()', async () => {
  const log: string[] = [];
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const mk = (name: string, ms: number) => ({
    name,
    setup: async () => {
      log.push(`setup ${name}`);
      await sleep(40); // untimed: must not show in the samples
    },
    run: async () => {
      log.push(`run ${name}`);
      await sleep(ms);
    },
    teardown: () => {
      log.push(`teardown ${name}`);
    },
  });
  const res = await pairedRuns([mk('A', 1), mk('B', 25), mk('C', 1)], { runs: 3, warmup: 1, baseline: 'A' });

  const runs = log.filter((l) => l.startsWith('run ')).map((l) => l.slice(4));
  // Warm-up round first (ABC), then the measured rounds rotated.
  assert.deepEqual(runs, ['A', 'B', 'C', 'B', 'C', 'A', 'C', 'A', 'B', 'A', 'B', 'C']);
  assert.deepEqual(res.rounds, [['B', 'C', 'A'], ['C', 'A', 'B'], ['A', 'B', 'C']]);
  // Every run is wrapped by its own setup and teardown.
  for (let k = 0; k < log.length; k += 3) {
    const name = log[k]!.split(' ')[1];
    assert.deepEqual(log.slice(k, k + 3), [`setup ${name}`, `run ${name}`, `teardown ${name}`]);
  }
  assert.equal(res.baseline, 'A');
  const byName = Object.fromEntries(res.cases.map((c) => [c.name, c]));
  for (const c of res.cases) {
    assert.equal(c.samples.length, 3);
    assert.equal(c.median, median(c.samples));
    assert.equal(c.min, Math.min(...c.samples));
    assert.equal(c.max, Math.max(...c.samples));
    assert.equal(c.ratio, c.median / byName.A!.median);
  }
  assert.equal(byName.A!.ratio, 1);
  assert.ok(byName.B!.median >= 24, `B median ${byName.B!.median}`);
  assert.ok(byName.A!.median < 35, `setup time leaked into A: ${byName.A!.median}`);
});

void test('pairedRuns rejects bad input', async () => {
  const noop = { name: 'x', run: async () => {} };
  await assert.rejects(pairedRuns([], { runs: 1 }));
  await assert.rejects(pairedRuns([noop, { ...noop }], { runs: 1 }), /duplicate/);
  await assert.rejects(pairedRuns([noop], { runs: 1, baseline: 'y' }), /baseline/);
  await assert.rejects(pairedRuns([noop], { runs: 0 }), /runs/);
});

void test('timeCommand measures a process and reports failures', async () => {
  const ok = await timeCommand(process.execPath, ['-e', 'setTimeout(() => console.log("hi"), 30)']);
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.stdout.trim(), 'hi');
  assert.ok(ok.ms >= 30, `${ok.ms} ms`);
  await assert.rejects(timeCommand(process.execPath, ['-e', 'process.exit(3)']), /exit code 3/);
  const failed = await timeCommand(process.execPath, ['-e', 'process.exit(3)'], { allowFailure: true });
  assert.equal(failed.exitCode, 3);
  await assert.rejects(timeCommand('/nonexistent/command', []));
});

void test('peakRssOfCommand sees a 64 MiB allocation', async () => {
  const base = await peakRssOfCommand(process.execPath, ['-e', '0']);
  const big = await peakRssOfCommand(process.execPath, ['-e', 'Buffer.alloc(64 * 1024 * 1024, 1)']);
  // Node alone is a few tens of MiB; the buffer adds 65,536 KiB (some tools over-report 4×).
  assert.ok(base > 10_000 && base < 200_000, `baseline ${base} KiB`);
  assert.ok(big - base > 60_000 && big - base < 90_000, `difference ${big - base} KiB`);
});

void test('makeTree is deterministic: same seed, same names and bytes; other seed, other bytes', async () => {
  await withTempDir(async (dir) => {
    const opts = { dirs: 3, filesPerDir: 7, minSize: 10, maxSize: 300, seed: 42 };
    const a = await makeTree(join(dir, 'a'), opts);
    const b = await makeTree(join(dir, 'b'), opts);
    await makeTree(join(dir, 'c'), { ...opts, seed: 43 });
    assert.deepEqual(a, b);
    assert.equal(a.files, 21);
    const [sa, sb, sc] = await Promise.all([snapshot(join(dir, 'a')), snapshot(join(dir, 'b')), snapshot(join(dir, 'c'))]);
    assert.equal(sa.size, 21);
    assert.deepEqual(sa, sb);
    assert.deepEqual([...sa.keys()], [...sc.keys()]);
    assert.notDeepEqual([...sa.values()], [...sc.values()]);
    let bytes = 0;
    for (const f of await listFiles(join(dir, 'a'))) {
      const { size } = await stat(f);
      assert.ok(size >= 10 && size <= 300, `${f}: ${size} bytes`);
      bytes += size;
    }
    assert.equal(bytes, a.bytes);
  });
});

void test('makeLargeFiles writes the requested sizes with distinct content', async () => {
  await withTempDir(async (dir) => {
    const stats = await makeLargeFiles(dir, { count: 2, sizeMB: 2 });
    assert.deepEqual(stats, { files: 2, bytes: 4 * 1024 * 1024 });
    const snap = await snapshot(dir);
    assert.deepEqual([...snap.keys()], ['large-0.bin', 'large-1.bin']);
    assert.notEqual(snap.get('large-0.bin'), snap.get('large-1.bin'));
    assert.equal((await stat(join(dir, 'large-1.bin'))).size, 2 * 1024 * 1024);
  });
});

void test('mutateFraction changes exactly round(fraction × files) files, keeps sizes, moves mtimes', async () => {
  await withTempDir(async (dir) => {
    const opts = { dirs: 4, filesPerDir: 25, minSize: 1, maxSize: 64, seed: 5 };
    for (const [name, fraction, expected] of [['a', 0.1, 10], ['b', 0.015, 2], ['c', 0, 0], ['d', 1, 100]] as const) {
      const root = join(dir, name);
      await makeTree(root, opts);
      const before = await snapshot(root);
      const sizes = new Map<string, number>();
      const mtimes = new Map<string, number>();
      for (const f of await listFiles(root)) {
        const st = await stat(f);
        sizes.set(relative(root, f), st.size);
        mtimes.set(relative(root, f), st.mtimeMs);
      }
      const changed = await mutateFraction(root, fraction, 9);
      const after = await snapshot(root);
      const differs = [...before.keys()].filter((k) => before.get(k) !== after.get(k)).sort();
      assert.equal(changed.length, expected, `fraction ${fraction}`);
      assert.deepEqual(differs, changed);
      for (const rel of changed) {
        const st = await stat(join(root, rel));
        assert.equal(st.size, sizes.get(rel));
        assert.ok(st.mtimeMs >= mtimes.get(rel)! + 1000, 'mtime must move so rsync sees the change');
      }
    }
    // Same seed on an identical tree: the same files, the same new bytes.
    await makeTree(join(dir, 'e'), opts);
    await makeTree(join(dir, 'g'), opts);
    assert.deepEqual(await mutateFraction(join(dir, 'e'), 0.1, 9), await mutateFraction(join(dir, 'g'), 0.1, 9));
    assert.deepEqual(await snapshot(join(dir, 'e')), await snapshot(join(dir, 'g')));
    await assert.rejects(mutateFraction(join(dir, 'e'), 1.5, 1));
  });
});

void test('niceTicks and logTicks cover the data with round values', () => {
  assert.deepEqual(niceTicks(0, 1.3, 5), [0, 0.5, 1, 1.5]);
  assert.deepEqual(niceTicks(0, 0.3, 5), [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(niceTicks(0, 950, 5), [0, 200, 400, 600, 800, 1000]);
  assert.deepEqual(logTicks(1000, 1e6), [1000, 10000, 100000, 1e6]);
  assert.deepEqual(logTicks(1000, 100000), [1000, 2000, 5000, 10000, 20000, 50000, 100000]);
  assert.deepEqual(logTicks(20, 3000), [10, 100, 1000, 10000]);
  assert.deepEqual(logTicks(30, 80), [10, 20, 50, 100]);
});

void test('barChart is a well-formed standalone SVG with every label, value and the reference line', () => {
  const svg = barChart({
    title: 'Ratios <&> "quoted"',
    unit: '×',
    referenceLine: 1,
    rows: [
      { label: 'cp -a', value: 1 },
      { label: 'rsync -a & friends', value: 1.234 },
      { label: 'cp -al', value: 0.08 },
    ],
  });
  const { root, texts } = assertWellFormedXml(svg);
  assert.equal(root, 'svg');
  assert.match(svg, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(!svg.includes('NaN'));
  assert.ok(!/@import|url\(|<script/i.test(svg), 'no external resources or scripts');
  for (const label of ['cp -a', 'rsync -a &amp; friends', 'cp -al', '1.23×', '0.08×', 'Ratios &lt;&amp;&gt; &quot;quoted&quot;']) {
    assert.ok(texts.some((t) => t.includes(label)), `missing ${label}`);
  }
  assert.match(svg, /stroke-dasharray="5 4"/);
  const width = /width="(\d+)"/.exec(svg);
  assert.equal(width?.[1], '720');
});

void test('lineChart is well-formed, has axes, ticks and a legend, and survives log-axis zeros', () => {
  const svg = lineChart({
    title: 'Time vs files',
    xLabel: 'files',
    yLabel: 'ms',
    logX: true,
    logY: true,
    series: [
      { name: 'cp -a', points: [[1000, 30], [10000, 300], [100000, 3200]] },
      { name: 'rsync <fast>', points: [[1000, 40], [10000, 0], [100000, 5000]] },
      { name: 'empty', points: [] },
    ],
  });
  const { root, texts } = assertWellFormedXml(svg);
  assert.equal(root, 'svg');
  assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'));
  for (const label of ['Time vs files', 'files (log scale)', 'ms (log scale)', 'cp -a', 'rsync &lt;fast&gt;', 'empty', '1,000', '100,000']) {
    assert.ok(texts.some((t) => t.includes(label)), `missing ${label}`);
  }
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  const linear = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] });
  assertWellFormedXml(linear);
  assert.ok(linear.includes('no data'));
  assert.equal(escapeXml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&apos;');
});

void test('markdownTable aligns numeric columns and escapes pipes', () => {
  const md = markdownTable({ caption: 'c', columns: ['name', 'runs', 'ms'], rows: [['a|b', 5, 12.345], ['c', 10, '–']] });
  assert.equal(md, ['| name | runs | ms |', '| --- | ---: | ---: |', '| a\\|b | 5 | 12.3 |', '| c | 10 | – |'].join('\n'));
});

void test('writeReport builds the Markdown and the charts from result files', async () => {
  await withTempDir(async (dir) => {
    const resultsDir = join(dir, 'results');
    const docsFile = join(dir, 'docs', 'benchmarks.md');
    await mkdir(join(resultsDir, 'quick'), { recursive: true });
    const machine = await describeMachine({ tmpDir: dir });
    const fixture: Result = {
      name: 'fixture',
      title: 'Fixture bench',
      description: 'A result made up for the test.',
      machine,
      quick: false,
      tables: [{ caption: 'Medians', columns: ['case', 'ms'], rows: [['cp -a', 100], ['cp -al', 8.5]] }],
      charts: [
        { file: 'fixture-bars', caption: 'Bars', spec: { type: 'bar', title: 'Bars', unit: 'ms', rows: [{ label: 'cp -a', value: 100 }] } },
        { file: 'fixture-custom.svg', caption: 'Custom' },
      ],
      notes: ['A note.'],
    };
    await writeFile(join(resultsDir, 'fixture.json'), JSON.stringify(fixture));
    await writeFile(join(resultsDir, 'fixture-custom.svg'), barChart({ title: 'custom', unit: '', rows: [] }));
    // Quick results sit in a subfolder and must not reach the report.
    await writeFile(join(resultsDir, 'quick', 'other.json'), JSON.stringify({ ...fixture, name: 'other', title: 'Quick only' }));

    const out = await writeReport({ resultsDir, docsFile });
    assert.deepEqual(out.results, ['fixture']);
    const md = await readFile(docsFile, 'utf8');
    assert.match(md, /^# Benchmarks/);
    assert.ok(md.indexOf('## Machine') < md.indexOf('## Fixture bench'), 'machine first');
    assert.ok(md.includes(machine.cpuModel));
    assert.ok(md.includes('A result made up for the test.'));
    assert.ok(md.includes('| case | ms |\n| --- | ---: |\n| cp -a | 100 |\n| cp -al | 8.50 |'));
    assert.ok(md.includes('![Bars](benchmarks/fixture-bars.svg)'));
    assert.ok(md.includes('![Custom](benchmarks/fixture-custom.svg)'));
    assert.ok(md.includes('- A note.'));
    assert.ok(!md.includes('Quick only'));
    assert.ok(existsSync(join(dir, 'docs', 'benchmarks', 'fixture-bars.svg')));
    assertWellFormedXml(await readFile(join(dir, 'docs', 'benchmarks', 'fixture-custom.svg'), 'utf8'));

    await writeFile(join(resultsDir, 'broken.json'), '{"name": "broken"}');
    await assert.rejects(loadResults(resultsDir), /broken\.json/);
  });
});

void test('writeReport says so when there are no results', async () => {
  await withTempDir(async (dir) => {
    const docsFile = join(dir, 'benchmarks.md');
    await writeReport({ resultsDir: join(dir, 'none'), docsFile });
    assert.match(await readFile(docsFile, 'utf8'), /No results yet/);
  });
});
