/**
 * A watchdog that cleans up after an owner process that could not: a small `sh` in its own session
 * that reads a pipe from the owner. The pipe closes when the owner ends however it ends (exit, an
 * unhandled SIGINT/SIGTERM, SIGKILL, a crash) without changing how it ends: no signal handler is
 * installed in the owner. It then stops the processes it was told about (and the server named by
 * postmaster.pid) if they still run from the run directory, and removes the directory.
 *
 * Told `done` (after a normal stop), it exits doing nothing. Absent (Windows, no /bin/sh) or killed
 * with its owner, the next start's sweep removes what is left.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { OWNER_FILE, RUN_DIR_PREFIX } from './run-dir.js';

/** The owner's side of the pipe. */
export interface Watchdog {
  /** Also stop this process (initdb, the server) if the owner ends before {@link release}. */
  track(pid: number | undefined): void;
  /** The owner cleaned up itself: the watchdog exits without doing anything. */
  release(): void;
}

// $1: the run directory. "Ours": a live process whose arguments name the run directory (its random
// name makes that unambiguous; a zombie has no arguments). SIGQUIT, SIGKILL after 10 s.
const SCRIPT = `
set -u
dir=$1
case $dir in /*/${RUN_DIR_PREFIX}??????|/${RUN_DIR_PREFIX}??????) ;; *) exit 2 ;; esac
pids=
while IFS= read -r line; do
  case $line in
    done) exit 0 ;;
    pid\\ *) pids="$pids \${line#pid }" ;;
  esac
done
[ -f "$dir/${OWNER_FILE}" ] || exit 0
ours() {
  if [ -d /proc/self ]; then
    tr '\\000' '\\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dir/"
  else
    ps -p "$1" -o command= 2>/dev/null | grep -qF -- "$dir/"
  fi
}
stop() {
  case $1 in ''|*[!0-9]*) return 0 ;; esac
  ours "$1" || return 0
  kill -QUIT "$1" 2>/dev/null
  i=0
  while ours "$1"; do
    i=$((i + 1))
    [ $i -eq 100 ] && kill -KILL "$1" 2>/dev/null
    [ $i -gt 200 ] && return 0
    sleep 0.1 2>/dev/null || sleep 1
  done
}
for pid in $pids; do stop "$pid"; done
stop "$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)"
rm -rf "$dir"/* && rm -f "$dir/${OWNER_FILE}" && rmdir "$dir"
`;

/** Starts the watchdog of `dir`; undefined where there is no /bin/sh (the sweep remains). */
export function startWatchdog(dir: string): Watchdog | undefined {
  if (process.platform === 'win32') return undefined;
  let child;
  try {
    child = spawn('/bin/sh', ['-c', SCRIPT, 'cache-postgres-watchdog', dir], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return undefined;
  }
  const pipe = child.stdin as Socket;
  child.on('error', () => {}); // no /bin/sh: the sweep remains
  pipe.on('error', () => {}); // EPIPE: the watchdog is gone
  // Neither keeps this process alive; the pipe must simply stay open as long as the process lives.
  child.unref();
  pipe.unref();
  let released = false;
  return {
    track(pid) {
      if (!released && pid !== undefined) pipe.write(`pid ${pid}\n`);
    },
    release() {
      if (released) return;
      released = true;
      pipe.end('done\n');
    },
  };
}
