/**
 * Checkpoints the WAL of every SQLite database in the data folder from a thread
 * of its own (checkpointer-thread.ts), so that the threads writing them (plugin
 * workers, the broker on the main thread) do not stop for a checkpoint's copy
 * and fsync. They keep SQLite's own auto-checkpoint as the fallback, raised
 * to FALLBACK_PAGES while this thread runs (autoCheckpointPages): at SQLite's
 * default of 1,000 pages a busy writer reached it between two rounds here and
 * did the checkpoint (and its fsyncs) itself, in the middle of its requests.
 * A fully checkpointed WAL starts over at the next write.
 */
const ENTRY = import.meta.url.includes("/$bunfs/") ? "./storage/checkpointer-thread.ts" : new URL("./checkpointer-thread.ts", import.meta.url).href;

/** ~40 MB of 4 KiB pages: reached only if this thread falls far behind. */
const FALLBACK_PAGES = 10_000;

/** `PRAGMA wal_autocheckpoint` for the connections that write; undefined: SQLite's default (1,000), without the checkpointer thread. */
export const autoCheckpointPages = (checkpointMs: number): number | undefined => (checkpointMs > 0 ? FALLBACK_PAGES : undefined);

export interface CheckpointerStart {
  dataDir: string;
  intervalMs: number;
  /** How often the folder is looked at again for new databases. */
  scanMs: number;
}

export class Checkpointer {
  private readonly worker = new Worker(ENTRY);

  constructor(dataDir: string, intervalMs = 100, scanMs = 1_000) {
    this.worker.postMessage({ dataDir, intervalMs, scanMs } satisfies CheckpointerStart);
    this.worker.unref();
  }

  /** Closes its connections (after one last checkpoint) and ends the thread. */
  stop(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.worker.terminate();
        resolve();
      };
      const timer = setTimeout(done, 2_000);
      this.worker.onmessage = done;
      this.worker.postMessage("stop");
    });
  }
}
