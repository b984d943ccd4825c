/**
 * Watches that a worker's event loop still turns: ping every `intervalMs`;
 * when no pong came for `timeoutMs` (an endless loop, say), call `onSilent`. Time the watching
 * thread itself was stalled (its timer late) does not count as the worker's silence.
 */
export class Heartbeat {
  private timer: Timer | null = null;
  private lastPong = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly ping: () => void,
    private readonly onSilent: (silentMs: number) => void,
  ) {}

  start(): void {
    this.stop();
    this.lastPong = performance.now();
    let lastTick = this.lastPong;
    this.timer = setInterval(() => {
      const now = performance.now();
      // A tick that comes late means this thread was busy: its own stall is not the worker's silence
      // (the worker's pong may be waiting behind it in this thread's queue).
      const stalled = now - lastTick - this.intervalMs;
      if (stalled > this.intervalMs) this.lastPong += stalled;
      lastTick = now;
      const silent = now - this.lastPong;
      if (silent > this.timeoutMs) {
        this.stop();
        this.onSilent(silent);
      } else {
        this.ping();
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  pong(): void {
    this.lastPong = performance.now();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
