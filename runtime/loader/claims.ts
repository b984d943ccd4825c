/**
 * Decides which plugin gets a service name when several claim it: the first in
 * load order (built-ins, then files by name), decided once every plugin has
 * loaded or failed, and before any of them opens a database.
 */
import { PlinthError } from "../errors";

export class NameClaims {
  /** Per plugin: its name once loaded, null if it failed first, undefined while loading. */
  private readonly names: Array<string | null | undefined>;
  private waiting: number;
  private release!: () => void;
  private readonly allLoaded = new Promise<void>((resolve) => (this.release = resolve));

  constructor(private readonly origins: readonly string[]) {
    this.names = origins.map(() => undefined);
    this.waiting = origins.length;
    if (this.waiting === 0) this.release();
  }

  /** Plugin `index` loaded as `name`: resolves when it may open its database, or rejects with PLT_PLUGIN_DUPLICATE. */
  async claim(index: number, name: string): Promise<void> {
    this.settle(index, name);
    await this.allLoaded;
    const first = this.names.indexOf(name);
    if (first !== index) {
      throw new PlinthError("PLT_PLUGIN_DUPLICATE", `service name "${name}" is already taken by ${this.origins[first]}`);
    }
  }

  /** Plugin `index` failed before claiming a name. */
  failed(index: number): void {
    this.settle(index, null);
  }

  private settle(index: number, name: string | null): void {
    if (this.names[index] !== undefined) return;
    this.names[index] = name;
    if (--this.waiting === 0) this.release();
  }
}
