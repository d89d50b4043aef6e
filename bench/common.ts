// Shared by the bench processes: the messages between the orchestrator and the load process, and
// readings of another process's CPU time and memory from /proc.
import fs from 'node:fs';

/** One autocannon run, described in JSON so the orchestrator can hand it to the load process. */
export interface LoadJob {
  url: string;
  method?: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
  connections: number;
  duration?: number;
  /** Stops after this many requests instead of after `duration`. */
  amount?: number;
  /** Requests per second across all connections (an open-loop probe); absent: as fast as possible. */
  overallRate?: number;
  /** Each request logs in as the next of these users (round robin). */
  logins?: { emails: string[]; password: string };
  /** Each request presents the next refresh token `${prefix}${n}`, n from 1 to `count`. */
  refresh?: { prefix: string; count: number };
}

export interface LoadResult {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}

export interface LoadMessage {
  id: number;
  jobs: LoadJob[];
}

export interface LoadReply {
  id: number;
  results?: LoadResult[];
  error?: string;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux.

/** User + system CPU time of a process (all its threads) in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime), counted from 1; `fields` starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** A line of /proc/<pid>/status in MB (VmRSS, VmHWM). */
export function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Samples a process's RSS until stopped; returns the peak, in MB. */
export function sampleRss(pid: number, everyMs = 100): () => number {
  let peak = memoryMb(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, memoryMb(pid));
    } catch {
      // The process is gone; keep the last peak.
    }
  }, everyMs);
  return () => {
    clearInterval(timer);
    try {
      peak = Math.max(peak, memoryMb(pid));
    } catch {
      // idem
    }
    return peak;
  };
}

/** Direct children of a process whose command line contains `needle`. */
export function childPids(parent: number, needle: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}
