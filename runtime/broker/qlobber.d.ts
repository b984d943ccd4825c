/** qlobber's general matcher (no types of its own), as the broker's emitter uses it. */
declare module "qlobber" {
  /** Filters → values; match(topic) gives the value of every filter that matches, once per add. */
  export class Qlobber<T> {
    constructor(options?: import("qlobber").QlobberOptions);
    add(filter: string, value: T): this;
    /** Without `value`: every value of the filter. */
    remove(filter: string, value?: T): this;
    match(topic: string): T[];
  }
}
