/** `plinth backup <folder>`: a consistent copy of every store, beside a running platform. */
import { backup } from "../storage/backup";

export function backupCommand(options: { dataDir: string; folder: string; json: boolean }): number {
  const result = backup(options.dataDir, options.folder);
  if (options.json) {
    console.log(JSON.stringify(result));
    return 0;
  }
  for (const f of result.files) console.log(`wrote ${f.file} (${bytes(f.bytes)})`);
  console.log(`backup complete: ${result.files.length} file${result.files.length === 1 ? "" : "s"} in ${result.folder}`);
  return 0;
}

/** 1234567 → "1.2 MB". */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
