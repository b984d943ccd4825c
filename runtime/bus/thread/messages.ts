/**
 * What the main thread and the broker's thread say to each other (structured clone: both sides are
 * the runtime's own code). Requests carry an id answered by "done"; WebSocket connections from the
 * gateway are relayed frame by frame under an id of their own.
 */
import type { Config } from "../../../config/schema";
import type { Fields } from "../../log";
import type { LogGeneration } from "../../storage/generation";
import type { StorageState } from "../../storage/faults";

export type ToBroker =
  /** Start the broker with this config (the TCP and TLS ports are the ones to bind). */
  | { t: "start"; config: Readonly<Config> }
  | { t: "publish"; id: number; topic: string; payload: string | Uint8Array; qos: 0 | 1; retain: boolean }
  | { t: "clear"; id: number; filter: string }
  | { t: "subscribe"; id: number; filter: string }
  | { t: "unsubscribe"; id: number; subscription: number }
  /** Serve a plugin worker's events port (transferred with the message) until "unserve". */
  | { t: "serve"; id: number; service: string; generation: LogGeneration | null }
  | { t: "unserve"; id: number }
  | { t: "ws-open"; id: number }
  | { t: "ws-data"; id: number; data: Uint8Array }
  | { t: "ws-drained"; id: number }
  | { t: "ws-blocked"; id: number }
  | { t: "ws-closed"; id: number }
  | { t: "ping" }
  | { t: "close" };

export type FromBroker =
  | { t: "ready"; port: number; tlsPort: number | null; websocketPort: number | null }
  | { t: "failed"; code: string; message: string }
  | { t: "done"; id: number; error?: string; value?: number }
  /** A message for the in-process subscription `subscription` (the id of its "subscribe"). */
  | { t: "message"; subscription: number; topic: string; payload: Uint8Array }
  | { t: "ws-send"; id: number; data: Uint8Array }
  | { t: "ws-pause"; id: number }
  | { t: "ws-resume"; id: number }
  | { t: "ws-end"; id: number }
  | { t: "storage"; fault: StorageState | null }
  | { t: "log"; path: string[]; level: "debug" | "info" | "warn" | "error"; msg: string; fields?: Fields }
  | { t: "pong" }
  | { t: "closed" };
