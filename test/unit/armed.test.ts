import { test } from 'node:test';
import assert from 'node:assert/strict';
import { armedNarration, awaitArmed, awaitVerdict, commitSwitch, hookFailureOf, disarm, releasedByProgram, switchBack, switchTogether, type Session } from '../../src/remote/armed.ts';
import type { Frame } from '../../src/remote/facts.ts';
import type { ExecResult } from '../../src/remote/ssh.ts';

/**
 * A host program in memory, speaking the frame protocol as `armedTail` does: `reply` decides which
 * frames answer each line sent; `exit` ends the program (a lost connection when `code` is 255).
 */
class ScriptedHost implements Session {
  frames: Frame[] = [];
  sent: string[] = [];
  constructor(
    /** Every line sent to every host of a test, in order: shows what went out before any answer. */
    private readonly log: string[],
    private readonly reply: (line: string, host: ScriptedHost) => void = () => undefined,
  ) {}
  private waiters: { tags: readonly string[]; resolve: (f: Frame) => void; reject: (e: Error) => void }[] = [];
  private ended = false;
  private finish: (r: ExecResult) => void = () => undefined;
  readonly done = new Promise<ExecResult>((resolve) => {
    this.finish = resolve;
  });

  emit(tag: string, value = ''): void {
    const frame: Frame = { tag, value, at: performance.now() };
    this.frames.push(frame);
    for (const w of [...this.waiters]) {
      if (w.tags.includes(tag)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  }

  exit(code: number): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error('ended'));
    this.finish({ code, signal: null, frames: this.frames, stderr: '' });
  }

  waitFor(tags: readonly string[]): Promise<Frame> {
    const seen = this.frames.find((f) => tags.includes(f.tag));
    if (seen) return Promise.resolve(seen);
    if (this.ended) return Promise.reject(new Error('ended'));
    return new Promise((resolve, reject) => this.waiters.push({ tags, resolve, reject }));
  }

  send(line: string): boolean {
    if (this.ended) return false;
    this.sent.push(line);
    this.log.push(line);
    // Answers come later, as from a real pipe: never within the send.
    setImmediate(() => this.reply(line, this));
    return true;
  }

  end(): void {
    setImmediate(() => this.exit(0));
  }
}

void test('go reaches every armed host before any host answers; answers come back in order with their kind', async () => {
  const log: string[] = [];
  const answered: string[] = [];
  const ok = new ScriptedHost(log, (line, h) => {
    if (line === 'go') {
      answered.push(`ok after ${log.length} sent`);
      h.emit('switched', 'r2');
    }
  });
  const refused = new ScriptedHost(log, (line, h) => {
    if (line === 'go') h.emit('switch-failed', '  ');
  });
  const gone = new ScriptedHost(log, (line, h) => {
    if (line === 'go') h.exit(255);
  });
  const answers = await switchTogether([ok, refused, gone]);
  assert.deepEqual(log, ['go', 'go', 'go']);
  assert.deepEqual(answered, ['ok after 3 sent']);
  assert.equal(answers[0]?.kind, 'switched');
  assert.ok(answers[0]?.kind === 'switched' && answers[0].afterMs >= 0);
  // An empty refusal still tells the reader what happened.
  assert.deepEqual(answers[1], { kind: 'switch-failed', message: 'rename refused' });
  assert.deepEqual(answers[2], { kind: 'lost' });
});

void test('a host that ends before ready is refused with its whole result; a ready one is armed', async () => {
  const log: string[] = [];
  const bad = new ScriptedHost(log);
  bad.emit('error', 'UNKNOWN_RELEASE');
  bad.exit(1);
  const refused = await awaitArmed(bad);
  assert.equal(refused.kind, 'refused');
  assert.ok(refused.kind === 'refused' && refused.result.code === 1 && refused.result.frames.some((f) => f.tag === 'error'));
  const good = new ScriptedHost(log);
  good.emit('ready', 'r2');
  assert.equal((await awaitArmed(good)).kind, 'armed');
});

void test('the verdict carries the health result, the failed after-switch hook and warnings; a program that ends first is lost', async () => {
  const h = new ScriptedHost([]);
  h.emit('warning', 'cannot write the journal');
  h.emit('after-switch-failed', '2 124 1');
  h.emit('health', 'failed');
  h.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(h), { kind: 'waiting', warnings: ['cannot write the journal'], health: 'failed', afterSwitchFailed: { hook: 2, code: 124, timedOut: true } });
  const quiet = new ScriptedHost([]);
  quiet.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(quiet), { kind: 'waiting', warnings: [] });
  const gone = new ScriptedHost([]);
  gone.exit(255);
  assert.deepEqual(await awaitVerdict(gone), { kind: 'lost' });
  // A failed reload (its message), and a host whose steps `stop` ended (which step).
  const reload = new ScriptedHost([]);
  reload.emit('reload-failed', 'reload of unit app.service failed');
  reload.emit('health', 'failed');
  reload.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(reload), { kind: 'waiting', warnings: [], health: 'failed', reloadFailed: 'reload of unit app.service failed' });
  const code = new ScriptedHost([]);
  code.emit('health-code', '7');
  code.emit('health', 'failed');
  code.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(code), { kind: 'waiting', warnings: [], health: 'failed', healthCode: { code: 7, timedOut: false } }, 'the last attempt\'s exit code');
  const late = new ScriptedHost([]);
  late.emit('health-code', '124 1');
  late.emit('health', 'failed');
  late.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(late), { kind: 'waiting', warnings: [], health: 'failed', healthCode: { code: 124, timedOut: true } }, 'its time ran out');
  const stopped = new ScriptedHost([]);
  stopped.emit('stopped', 'reloads');
  stopped.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(stopped), { kind: 'waiting', warnings: [], stopped: 'reloads' });
  const odd = new ScriptedHost([]);
  odd.emit('stopped', 'elsewhere');
  odd.emit('waiting', 'decision');
  assert.deepEqual(await awaitVerdict(odd), { kind: 'waiting', warnings: [] }, 'an unknown step is no stop');
});

void test('commit sends the word then the record lines; the host program releasing its lock is seen', async () => {
  const h = new ScriptedHost([], (line, host) => {
    if (host.sent.length === 2 && line === '{"id":"r2"}') host.emit('committed', 'r2');
  });
  assert.deepEqual(await commitSwitch(h, ['{"id":"r2"}']), { kind: 'committed', pruneFailed: [], warnings: [] });
  assert.deepEqual(h.sent, ['commit', '{"id":"r2"}']);
  assert.equal(releasedByProgram(h), true);
  // A release the host's prune could not move is named; the commit still finished.
  const stuck = new ScriptedHost([], (line, host) => {
    if (line === '{"id":"r3"}') {
      host.emit('prune-failed', 'r1 retire_release: cannot rename releases/r1 to .tmp/trash.x');
      host.emit('committed', 'r3');
    }
  });
  assert.deepEqual(await commitSwitch(stuck, ['{"id":"r3"}']), { kind: 'committed', pruneFailed: [{ id: 'r1', message: 'retire_release: cannot rename releases/r1 to .tmp/trash.x' }], warnings: [] });
  const failing = new ScriptedHost([]);
  const answer = await commitSwitch(failing, ['{}']);
  assert.equal(answer.kind, 'failed');
  assert.equal(releasedByProgram(failing), false);
});

void test('back: finished, switched back without finishing, or not known', async () => {
  const whole = new ScriptedHost([], (line, host) => {
    if (line === 'j') {
      host.emit('switched-back', 'r1');
      host.emit('back', 'r2');
    }
  });
  assert.deepEqual(await switchBack(whole, ['j']), { kind: 'back' });
  assert.deepEqual(whole.sent, ['back', 'j']);
  const half = new ScriptedHost([], (line, host) => {
    if (line === 'j') {
      host.emit('switched-back', 'r1');
      host.exit(1);
    }
  });
  assert.equal((await switchBack(half, ['j'])).kind, 'switched-back');
  const gone = new ScriptedHost([]);
  gone.exit(255);
  assert.equal((await switchBack(gone, ['j'])).kind, 'lost');
});

void test('disarm sends a word other than go and waits for the program to end', async () => {
  const h = new ScriptedHost([]);
  const result = await disarm(h);
  assert.deepEqual(h.sent, ['abort']);
  assert.equal(result.code, 0);
});

void test('a hook failure frame is read as hook, code and whether its time ran out; a malformed one is no report', () => {
  assert.deepEqual(hookFailureOf('1 3'), { hook: 1, code: 3, timedOut: false });
  // A hook that exits 124 itself did not time out: only the host's ` 1` says it did.
  assert.deepEqual(hookFailureOf('2 124'), { hook: 2, code: 124, timedOut: false });
  assert.deepEqual(hookFailureOf('2 137 1'), { hook: 2, code: 137, timedOut: true });
  for (const bad of [undefined, '', '1', '1 3 4', '1 3 1 1', 'x 3', '1 -3', ' 1 3']) assert.equal(hookFailureOf(bad), undefined, String(bad));
});

void test('an armed program is told as a local deploy tells its own: a step line per hook, reload and check, each output line labelled with the host and its step', () => {
  const said: string[] = [];
  const n = armedNarration('web1', { beforeSwitch: ['php artisan migrate'], afterSwitch: ['true', 'echo warmed'], reloads: 'unit app.service', health: 'curl -f localhost (up to 30 s)' }, (e) => {
    if (e.type === 'step') said.push(`step ${e.message}`);
    else if (e.type === 'output') said.push(`[${e.source}] ${e.line}`);
  });
  const frame = (tag: string, value = ''): void => n.onFrame?.({ tag, value });
  const line = (text: string): void => void n.onStderrLine?.(text);
  // The labels follow the marks on stderr (step_out), whatever order the frames on stdout come in.
  line('before anything');
  frame('placed', 'r1');
  frame('hook', 'before-switch 1');
  frame('hooked', 'yes');
  line('\x01step before-switch');
  line('Migrating');
  line('\x01step -');
  line('listing');
  frame('hook', 'after-switch 2');
  line('\x01step after-switch');
  frame('warning', 'cannot write the journal');
  frame('reloading', '.');
  line('warmed');
  line('\x01step -');
  line('\x01step reload');
  line('systemctl reload-or-restart app.service');
  frame('checking', 'health');
  frame('waiting', 'decision');
  line('php-fpm master 7 reloaded');
  line('\x01step -');
  line('\x01step health-check');
  line('health check attempt 1 failed (exit code 7); retrying in 1 s');
  line('\x01step -');
  line('after');
  line('\x01step bogus one');
  // A hook whose output ends without a newline: its last bytes and the mark share a line. The
  // bytes are the hook's, and the mark still changes the label (it was printed as output, the
  // label left on the hook for what followed).
  frame('hook', 'after-switch 1');
  line('\x01step after-switch');
  line('no newline at the end\x01step -');
  line('own line');
  assert.deepEqual(said, [
    '[web1] before anything',
    'step web1: running before-switch hook: php artisan migrate',
    '[web1 before-switch] Migrating',
    '[web1] listing',
    'step web1: running after-switch hook: echo warmed',
    'step web1: reloading unit app.service',
    '[web1 after-switch] warmed',
    '[web1 reload] systemctl reload-or-restart app.service',
    'step web1: health check: curl -f localhost (up to 30 s)',
    '[web1 reload] php-fpm master 7 reloaded',
    '[web1 health-check] health check attempt 1 failed (exit code 7); retrying in 1 s',
    '[web1] after',
    '[web1] \x01step bogus one',
    'step web1: running after-switch hook: true',
    '[web1 after-switch] no newline at the end',
    '[web1] own line',
  ]);
});
