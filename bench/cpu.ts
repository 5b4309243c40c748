import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (Linux' USER_HZ, 100 on every current kernel). */
const TICKS = 100;

/** The servers whose CPU a target costs: PostgreSQL's processes, and Redis' (for @keyv/redis). Each is idle while the others' targets run. */
const SERVERS = new Set(['postgres', 'redis-server']);

/**
 * CPU seconds used so far by every process named `postgres` or `redis-server` on this machine (user + system, from
 * /proc/<pid>/stat), or undefined where /proc is not there. Backends that ended meanwhile take their
 * share with them: the bench's connections stay open while it measures.
 */
export function serverCpuSeconds(): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  let ticks = 0;
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      continue; // ended meanwhile
    }
    const close = stat.lastIndexOf(')');
    if (!SERVERS.has(stat.slice(stat.indexOf('(') + 1, close))) continue;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(close + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICKS;
}
