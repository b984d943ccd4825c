/** aedes-persistence's contract suite and callback wrapper (plain JS, no typings of their own). */
declare module "aedes-persistence/abstract.js" {
  import type { TestContext } from "node:test";
  export default function abstractPersistence(options: {
    test: (name: string, fn: (t: TestContext) => unknown) => unknown;
    persistence: () => unknown;
    /** Call setup(broker) and the promise interface directly (what aedes 1.x does). */
    testAsync?: boolean;
    /** Set `.broker` and wait for "ready" (the callback interface). */
    waitForReady?: boolean;
  }): void;
}

declare module "aedes-persistence/callBackPersistence.js" {
  export class CallBackPersistence {
    constructor(asyncInstanceFactory: (options: object) => unknown, options?: object);
  }
}
