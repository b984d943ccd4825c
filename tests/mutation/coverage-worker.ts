/**
 * Preloaded into every Worker a coverage run starts (see coverage-preload.ts). A Worker may be
 * terminated without warning, so each mutant is appended to `<PLINTH_MUTATION_COVERAGE>.worker`
 * the first time this thread reaches it, instead of once at the end.
 */
import { appendFileSync } from "node:fs";

const out = `${process.env.PLINTH_MUTATION_COVERAGE}.worker`;
const reached: Record<string, number> = {};
const counts = new Proxy(reached, {
  set(target, id: string, count: number) {
    if (!(id in target)) appendFileSync(out, `${id}\n`);
    target[id] = count;
    return true;
  },
});
(globalThis as { __stryker__?: unknown }).__stryker__ = { mutantCoverage: { static: counts, perTest: {} } };
