/**
 * aedes-persistence's own contract (its abstract.js, written for node:test,
 * which bun runs) against the SQLite persistence: once through the promise
 * interface aedes 1.x calls, once through aedes-persistence's callback
 * wrapper for callers of the older interface.
 */
import { afterAll } from "bun:test";
import { test, type TestContext } from "node:test";
import abstract from "aedes-persistence/abstract.js";
import { CallBackPersistence } from "aedes-persistence/callBackPersistence.js";
import { SqlitePersistence } from "../../../../runtime/broker/persistence/sqlite";
import { tempDir } from "../../../helpers/tmp";

const dir = tempDir("plinth-broker-contract");
afterAll(() => dir[Symbol.dispose]());
let files = 0;
const open = () => new SqlitePersistence({ file: dir.join(`${++files}.sqlite`) });

/** node:test's test, without the contract's diagnostics ("instance created", ...) in the output. */
const quiet = (name: string, fn: (t: TestContext) => unknown) =>
  test(name, (t) => {
    t.diagnostic = () => {};
    return fn(t) as Promise<void>;
  });

abstract({ test: quiet, persistence: open, testAsync: true });

abstract({ test: quiet, persistence: () => new CallBackPersistence(open), waitForReady: true });
