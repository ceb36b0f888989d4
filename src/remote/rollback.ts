/** Rolling a fleet back: every host to one release, switched all at once, or none of them. */
import { DeployError } from '../errors.ts';
import { planFleetRollback } from '../plan/fleet.ts';
import type { Journal } from '../plan/journal.ts';
import { checkReleaseId } from '../plan/validate.ts';
import { switchSkewMs } from '../plan/fleet.ts';
import { currentIdOf, currentProblem, FleetRun, hostClockSkew, fleetError, hostError, mergeRecord, resolveTargets, viewsOf, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { randomName } from './host.ts';
import { rollbackArmScript } from './script.ts';
import type { RunningRemote } from './ssh.ts';

export interface FleetRollbackOptions extends FleetOptions {
  /** Every host goes to this release (it must exist on all of them). */
  to?: string;
  /** Recorded on the release rolled back from. */
  reason?: string;
}

export interface FleetRollbackHost {
  host: string;
  root: string;
  /** switched: now on the target; unchanged: it already was (or nothing changed); unknown: connection lost. */
  outcome: 'switched' | 'unchanged' | 'unknown';
  current: string | null;
  previous: string | null;
  recovered: string[];
  error?: HostError;
}

export interface FleetRollbackResult {
  release: string;
  hosts: FleetRollbackHost[];
  skewMs: number;
  hostSkewMs?: number;
}

interface HostSwitch {
  from: string | null;
  armed?: RunningRemote;
  switched: boolean;
  at?: number;
  outcome: FleetRollbackHost['outcome'];
}

/** Switches every host to the previous good release (the same one everywhere), or to `to`. */
export async function fleetRollback(root: string | undefined, options: FleetRollbackOptions): Promise<FleetRollbackResult> {
  const targets = resolveTargets(options.hosts, root);
  if (options.to !== undefined) {
    checkReleaseId(options.to);
  }
  const fleet = new FleetRun(targets, options);
  const { emit } = fleet;
  const per = new Map<HostRun, HostSwitch>();
  let target: string | undefined;
  const report = (): FleetRollbackHost[] =>
    fleet.hosts.map((h) => {
      const s = per.get(h);
      const from = s?.from ?? (h.state ? currentIdOf(h.state) : null);
      const outcome = s?.outcome ?? (h.error && !h.remote.connected ? 'unknown' : 'unchanged');
      return {
        host: h.label,
        root: h.root,
        outcome,
        current: outcome === 'switched' ? (target ?? null) : outcome === 'unknown' ? null : from,
        previous: from,
        recovered: h.recovered,
        ...(h.error ? { error: h.error } : {}),
      };
    });
  const releaseAll = async (): Promise<void> => {
    await Promise.all(
      fleet.hosts.map(async (h) => {
        const s = per.get(h);
        if (s?.armed) {
          s.armed.send('abort');
          s.armed.end();
          const result = await s.armed.done;
          if (result.frames.some((f) => f.tag === 'committed' || f.tag === 'back')) h.remote.released();
        }
        if (!h.remote.locked) return;
        // Without its holder the lock may be someone else's by now: leave the host to recovery.
        if (!h.remote.holding) {
          h.remote.released();
          return;
        }
        await h.remote.unlock(s?.armed ? [{ op: 'clear-journal' }, { op: 'durable' }] : []).catch((error: unknown) => {
          h.error ??= hostError(error);
        });
      }),
    );
  };

  try {
    await fleet.each(
      fleet.hosts,
      async (h) => {
        const locked = await h.remote.lock({ command: options.command ?? 'fleet rollback', create: false, waitMs: options.waitMs, signal: options.signal });
        if (locked.tookOver) emit({ type: 'warning', message: `${h.label}: took over a stale lock: ${locked.tookOver.reason}` });
        h.facts = locked.facts;
        h.state = locked.state;
        if (!locked.state.rootExists) throw new DeployError('INVALID_ROOT', `${h.label}: ${h.root} does not exist`);
      },
      { failFast: true, signal: options.signal },
    );
    if (fleet.failed.length === 0) await fleet.recover(fleet.hosts);
    for (const h of fleet.hosts) {
      const problem = h.state ? currentProblem(h.label, h.root, h.state.current, options.to !== undefined) : undefined;
      if (problem) h.error ??= hostError(problem);
    }
    if (fleet.failed.length > 0) {
      await releaseAll();
      throw fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
    }
    const plan = planFleetRollback(
      fleet.hosts.map((h) => ({ host: h.label, current: currentIdOf(h.state as NonNullable<HostRun['state']>), ordered: viewsOf(h.state as NonNullable<HostRun['state']>) })),
      options.to,
    );
    if (!plan.ok) {
      for (const p of plan.problems) {
        const h = fleet.hosts.find((x) => x.label === p.host);
        if (h) h.error = { code: p.code, message: p.message };
      }
      await releaseAll();
      const first = plan.problems[0];
      throw new DeployError(first?.code ?? 'UNKNOWN_RELEASE', `nothing was rolled back: ${plan.problems.map((p) => p.message).join('; ')}`, {
        hint: plan.hint ?? `list releases with: atomic-deploy releases <root> ${fleet.hosts.map((h) => `--host ${h.label}`).join(' ')}`,
        details: { hosts: report() },
      });
    }
    target = plan.target;
    const releaseTarget = plan.target;
    const movers = fleet.hosts.filter((h) => plan.moves.some((m) => m.host === h.label));
    const now = (): string => new Date().toISOString();
    await fleet.each(
      movers,
      async (h) => {
        const state = h.state as NonNullable<HostRun['state']>;
        const locked = h.remote.locked as NonNullable<typeof h.remote.locked>;
        const from = currentIdOf(state) ?? (state.current.kind === 'dangling' ? state.current.id : null);
        const s: HostSwitch = { from, switched: false, outcome: 'unchanged' };
        per.set(h, s);
        const journal: Journal = { v: 1, op: 'rollback', token: locked.token, pid: locked.pid, startedAt: now(), release: releaseTarget, previous: from ?? '', phase: 'switching' };
        const script = rollbackArmScript({
          root: h.root,
          fsync: options.fsync !== false,
          journalSwitching: JSON.stringify(journal),
          tail: {
            id: releaseTarget,
            backTo: from,
            link: randomName('current'),
            afterSwitch: [],
            hookTimeoutS: 300,
            commitRecords: from === null ? [releaseTarget] : [releaseTarget, from],
            backRecords: [],
            prune: [],
            protect: [],
            token: locked.token,
            ...(locked.gate ? { gate: locked.gate } : {}),
          },
        });
        s.armed = h.remote.ssh.start(script, { onStderrLine: fleet.output(h) });
        const f = await s.armed.waitFor(['ready', 'error']).catch(() => undefined);
        if (f?.tag !== 'ready') {
          const result = await s.armed.done;
          s.armed = undefined;
          throw new DeployError(result.frames.find((x) => x.tag === 'error')?.value === 'UNKNOWN_RELEASE' ? 'UNKNOWN_RELEASE' : 'REMOTE', `${h.label}: ${result.frames.find((x) => x.tag === 'message')?.value ?? 'could not prepare the switch'}`);
        }
      },
      { failFast: true, signal: options.signal },
    );
    if (fleet.failed.length > 0 || options.signal?.aborted) {
      await releaseAll();
      throw fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
    }

    emit({ type: 'step', message: `switching ${movers.length} host${movers.length === 1 ? '' : 's'} to ${releaseTarget}` });
    const sentAt = performance.now();
    for (const h of movers) per.get(h)?.armed?.send('go');
    await Promise.all(
      movers.map(async (h) => {
        const s = per.get(h) as HostSwitch;
        const f = await s.armed?.waitFor(['switched', 'switch-failed']).catch(() => undefined);
        if (f?.tag === 'switched') {
          s.switched = true;
          s.outcome = 'switched';
          s.at = (f.at ?? performance.now()) - sentAt;
        } else if (f?.tag === 'switch-failed') {
          h.error = { code: 'IO', message: `${h.label}: the switch failed: ${f.value.trim()}` };
        } else {
          s.outcome = 'unknown';
          h.error = { code: 'REMOTE', message: `${h.label}: connection lost after the switch was sent: it is on ${releaseTarget} or still on ${s.from ?? 'no release'}` };
        }
      }),
    );
    const skewMs = Math.round(switchSkewMs(movers.map((h) => per.get(h)?.at).filter((x): x is number => x !== undefined)));
    const allSwitched = movers.every((h) => per.get(h)?.switched === true);
    await Promise.all(
      movers.map(async (h) => {
        const s = per.get(h) as HostSwitch;
        const armed = s.armed;
        if (!armed || !s.switched) return;
        const waiting = await armed.waitFor(['waiting']).catch(() => undefined);
        if (!waiting) {
          h.error ??= { code: 'REMOTE', message: `${h.label}: connection lost after it switched to ${releaseTarget}` };
          return;
        }
        if (allSwitched) {
          const t = now();
          armed.send('commit');
          armed.send(JSON.stringify(mergeRecord((h.state as NonNullable<HostRun['state']>).records, releaseTarget, { status: 'complete', activatedAt: t })));
          if (s.from !== null) armed.send(JSON.stringify(mergeRecord((h.state as NonNullable<HostRun['state']>).records, s.from, { status: 'rolled-back', endedAt: t, reason: options.reason ?? 'rolled back' })));
          armed.end();
          await armed.waitFor(['committed']).catch(async () => {
            h.error ??= { code: 'REMOTE', message: `${h.label}: switched, but recording it failed; the next command finishes it` };
            await armed.done;
          });
        } else {
          armed.send('back');
          armed.send('');
          armed.end();
          const back = await armed.waitFor(['back']).catch(() => undefined);
          s.outcome = back ? 'unchanged' : 'unknown';
        }
      }),
    );
    await releaseAll();
    const hostSkewMs = hostClockSkew(movers.map((h) => per.get(h)?.armed).filter((x): x is RunningRemote => x !== undefined && x.frames.some((f) => f.tag === 'switched')));
    const result: FleetRollbackResult = { release: releaseTarget, hosts: report(), skewMs, ...(hostSkewMs === undefined ? {} : { hostSkewMs }) };
    if (allSwitched && fleet.failed.length === 0) {
      emit({ type: 'step', message: `${releaseTarget} is live on ${fleet.hosts.length} host${fleet.hosts.length === 1 ? '' : 's'}` });
      return result;
    }
    throw fleetError(fleet.hosts, allSwitched ? `rolled back to ${releaseTarget}, with errors` : `the rollback to ${releaseTarget} did not switch everywhere; switched hosts went back`, { ...result });
  } finally {
    await fleet.close();
  }
}
