/** Progress on stderr: a bar on a terminal, a few plain lines otherwise (CI logs, pipes). */
import cliProgress from 'cli-progress';
import { terminalText } from '../report/terminal.js';
import { verbosity } from './terminal-options.js';

export interface Progress {
  update(done: number, total: number, label: string): void;
  stop(): void;
}

/** Labels may carry names read from files: control characters are escaped, one line each. */
export function progress(rawTitle: string): Progress {
  const title = terminalText(rawTitle, { singleLine: true });
  const clean = (label: string) => terminalText(label, { singleLine: true });
  if (verbosity() === 'quiet') return { update() {}, stop() {} };
  if (process.stderr.isTTY && process.env.TERM !== 'dumb') {
    const bar = new cliProgress.SingleBar(
      { format: `${title} [{bar}] {value}/{total} {label}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, barsize: 28 },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total, label) {
        if (!started) {
          bar.start(total, done, { label: clean(label) });
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done, { label: clean(label) });
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastPct = -1;
  return {
    update(done, total, label) {
      const pct = total ? Math.floor((done / total) * 4) * 25 : 0;
      if (pct !== lastPct) {
        process.stderr.write(`${title}: ${done}/${total} ${clean(label)}\n`);
        lastPct = pct;
      }
    },
    stop() {},
  };
}
