/**
 * Finds a Chromium to drive with playwright-core (which downloads no browser): CHROMIUM_PATH, else the
 * system's chromium / chromium-browser / google-chrome on PATH. Debian: `apt-get install chromium`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function findChromium(): string | undefined {
  const explicit = process.env['CHROMIUM_PATH'];
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    try {
      const found = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (found) return found;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

/** Flags for a headless Chromium in a container: root needs --no-sandbox; /dev/shm is often tiny. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'];
