/**
 * Watches that a worker's event loop still turns: ping every `intervalMs`;
 * when no pong came for `timeoutMs` (an endless loop, say), call `onSilent`.
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
    this.timer = setInterval(() => {
      const silent = performance.now() - this.lastPong;
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
