/** The parts of qlobber (aedes-persistence's topic matcher, no types of its own) used here. */
declare module "qlobber" {
  export interface QlobberOptions {
    separator?: string;
    wildcard_one?: string;
    wildcard_some?: string;
    match_empty_levels?: boolean;
  }
  /** Tells whether a topic matches any filter added. */
  export class QlobberTrue {
    constructor(options?: QlobberOptions);
    add(filter: string): this;
    test(topic: string): boolean;
  }
}

declare module "qlobber/aedes/qlobber-sub.js" {
  import type { QlobberOptions } from "qlobber";
  export interface TrieSubscription {
    clientId: string;
    topic: string;
    qos: number;
    rh?: number;
    rap?: boolean;
    nl?: boolean;
  }
  /** Filters → subscriptions, one per (client, filter); match(topic) gives every subscription whose filter matches. */
  export default class QlobberSub {
    constructor(options?: QlobberOptions);
    readonly subscriptionsCount: number;
    add(filter: string, sub: TrieSubscription): this;
    remove(filter: string, sub: { clientId: string; topic: string }): this;
    match(topic: string): TrieSubscription[];
  }
}
