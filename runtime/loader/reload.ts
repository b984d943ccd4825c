/**
 * Hot reload: watches the plugins folder and applies each change while the
 * platform serves.
 * - A new plugin is started and its routes appear.
 * - A changed plugin is started beside the old version (migrations included),
 *   takes over once ready, and the old one is drained and stopped.
 * - A removed plugin is drained and stopped (its database file stays).
 * - A new version that fails to load leaves the old one serving; the failure
 *   is reported like any load failure.
 * Changes are debounced per entry and applied one at a time.
 */
import { mkdirSync, watch, type FSWatcher } from "node:fs";
import { join, relative, sep } from "node:path";
import { PlinthError } from "../errors";
import type { Logger } from "../log";
import { entryFile } from "./discover";
import type { Loader, Service } from "./loader";

const DEBOUNCE_MS = 50;

export class Reloader {
  private watcher: FSWatcher | null = null;
  private readonly timers = new Map<string, Timer>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly loader: Loader,
    private readonly dir: string,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    mkdirSync(this.dir, { recursive: true });
    this.watcher = watch(this.dir, { recursive: true }, (_event, file) => {
      if (file) this.schedule(String(file).split(sep)[0]!);
    });
    this.log.info("watching plugins", { dir: this.dir });
  }

  /** Stops watching and waits for a change being applied to finish. */
  async close(): Promise<void> {
    this.watcher?.close();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.queue;
  }

  /** Applies the current state of one entry (file or folder name) of the plugins folder. */
  apply(entry: string): Promise<void> {
    this.queue = this.queue.then(() => this.reconcile(entry)).catch((err: Error) => this.log.error("reload failed", { entry, error: err.message }));
    return this.queue;
  }

  private schedule(entry: string): void {
    clearTimeout(this.timers.get(entry));
    this.timers.set(
      entry,
      setTimeout(() => {
        this.timers.delete(entry);
        void this.apply(entry);
      }, DEBOUNCE_MS),
    );
  }

  private async reconcile(entry: string): Promise<void> {
    const path = entryFile(this.dir, entry);
    const current = [...this.loader.registry.services.values()].find((s) => s.path !== null && relative(this.dir, s.path).split(sep)[0] === entry);
    if (!path) {
      // Gone (or no longer a plugin): a failure to load it is no longer news.
      this.loader.registry.forgetFailuresUnder(join(this.dir, entry));
      if (current) await this.loader.retire(current, this.graceMs);
      return;
    }
    const started = performance.now();
    const host = await this.loader.launch(path, (manifest) => {
      const holder = this.loader.registry.services.get(manifest.name);
      if (holder && holder !== current) {
        throw new PlinthError("PLT_PLUGIN_DUPLICATE", `service name "${manifest.name}" is already taken by ${holder.origin}`);
      }
    });
    if (!host) {
      if (current) this.log.warn("new version failed to load; the old one keeps serving", { service: current.name });
      return;
    }
    const service: Service = await this.loader.install(host, path, current);
    this.log.info(current ? "service replaced" : "service added", { service: service.name, version: host.manifest?.version, ms: Math.round(performance.now() - started) });
    if (current) await this.loader.retire(current, this.graceMs);
  }
}
