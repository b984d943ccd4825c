/** `plinth restore <folder>`: puts a backup back into a stopped platform's data folder. */
import { restore } from "../storage/backup";
import { bytes } from "./backup";

export function restoreCommand(options: { dataDir: string; folder: string; json: boolean }): number {
  const result = restore(options.folder, options.dataDir);
  if (options.json) {
    console.log(JSON.stringify(result));
    return 0;
  }
  for (const f of result.files) console.log(`restored ${f.file} (${bytes(f.bytes)})`);
  if (result.kept.length > 0) console.log(`left as they were (not in the backup): ${result.kept.join(", ")}`);
  console.log(`restore complete: ${result.files.length} file${result.files.length === 1 ? "" : "s"} into ${result.dataDir}`);
  return 0;
}
