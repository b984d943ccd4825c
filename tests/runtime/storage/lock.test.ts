import { describe, expect, test } from "bun:test";
import { DataFolderLock } from "../../../runtime/storage/lock";
import { PlinthError } from "../../../runtime/errors";
import { tempDir } from "../../helpers/tmp";

const code = (fn: () => unknown) => {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof PlinthError ? err.code : String(err);
  }
};

describe("DataFolderLock", () => {
  test("one holder at a time, in this process too; released, the folder can be taken again", () => {
    using dir = tempDir("plinth-lock");
    const first = DataFolderLock.acquire(dir.join("data"));
    expect(code(() => DataFolderLock.acquire(dir.join("data")))).toBe("PLT_DATA_LOCKED");
    expect(DataFolderLock.heldElsewhere(dir.join("data"))).toBe(true);
    first.release();
    expect(DataFolderLock.heldElsewhere(dir.join("data"))).toBe(false);
    DataFolderLock.acquire(dir.join("data")).release();
  });

  test("another process holding the folder is seen, and the lock is the OS's: it goes with the process", async () => {
    using dir = tempDir("plinth-lock");
    const holder = Bun.spawn(
      [process.execPath, "-e", `const { DataFolderLock } = await import(${JSON.stringify(`${import.meta.dir}/../../../runtime/storage/lock.ts`)}); DataFolderLock.acquire(${JSON.stringify(dir.join("data"))}); console.log("held"); await Bun.sleep(60_000);`],
      { stdout: "pipe" },
    );
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
    expect(DataFolderLock.heldElsewhere(dir.join("data"))).toBe(true);
    holder.kill("SIGKILL");
    await holder.exited;
    expect(DataFolderLock.heldElsewhere(dir.join("data"))).toBe(false);
  });
});
