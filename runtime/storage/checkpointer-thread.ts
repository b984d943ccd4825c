/**
 * Inside the checkpointer's thread: one connection per database found in the
 * data folder (those in WAL mode), and a PASSIVE checkpoint of each every
 * interval. PASSIVE never waits for nor blocks the writer; what a running
 * transaction still uses is left for the next round.
 */
import { Database } from "bun:sqlite";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { CheckpointerStart } from "./checkpointer";

declare const self: Worker;

const open = new Map<string, Database>();
let timer: Timer | undefined;

function scan(dataDir: string): void {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return; // not created yet
  }
  for (const name of names) {
    const file = join(dataDir, name);
    if (!name.endsWith(".sqlite") || open.has(file) || !existsSync(`${file}-wal`)) continue;
    try {
      open.set(file, new Database(file, { readwrite: true, create: false }));
    } catch {
      // Gone or not a database: looked at again at the next scan.
    }
  }
}

function checkpointAll(): void {
  for (const [file, db] of open) {
    try {
      db.exec("PRAGMA wal_checkpoint(PASSIVE)");
    } catch {
      db.close();
      open.delete(file);
    }
  }
}

self.onmessage = (e: MessageEvent<CheckpointerStart | "stop">) => {
  if (e.data === "stop") {
    clearInterval(timer);
    checkpointAll();
    for (const db of open.values()) db.close();
    open.clear();
    self.postMessage("stopped");
    return;
  }
  const { dataDir, intervalMs, scanMs } = e.data;
  let sinceScan = scanMs;
  timer = setInterval(() => {
    if ((sinceScan += intervalMs) >= scanMs) {
      sinceScan = 0;
      scan(dataDir);
    }
    checkpointAll();
  }, intervalMs);
};
