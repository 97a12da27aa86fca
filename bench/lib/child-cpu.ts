import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) a process used so far, in ms, from /proc/<pid>/stat; undefined where /proc is not
 * there. The clock tick is taken as 100 Hz (USER_HZ on every Linux we run on).
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process now, in MB, from /proc/<pid>/status; NaN where /proc is not there. */
export function processRssMb(pid: number): number {
  return statusMb(pid, 'VmRSS');
}

/**
 * The part of a process's resident set that no file backs (its heaps), in MB: RSS minus the pages of files it maps,
 * such as an LMDB store, which the kernel takes back under memory pressure.
 */
export function processAnonRssMb(pid: number): number {
  return statusMb(pid, 'RssAnon');
}

function statusMb(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}
