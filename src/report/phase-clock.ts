/**
 * Phase timings for reports: `since()` is the seconds since its previous call (the first call: since the clock was
 * made), so consecutive phases of one command add up to its wall time.
 */
export function phaseClock(): { readonly started: number; since(): number } {
  const started = performance.now();
  let mark = started;
  return {
    started,
    since(): number {
      const now = performance.now();
      const seconds = (now - mark) / 1000;
      mark = now;
      return seconds;
    },
  };
}
