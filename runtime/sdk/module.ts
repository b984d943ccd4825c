/**
 * Makes `import ... from "plinth"` resolve to the SDK in this thread, from
 * source and from the compiled binary alike, with nothing installed beside
 * the plugin. Call once per thread before importing plugin or config files.
 */
import * as sdk from "./index";

let registered = false;

export function registerSdkModule(): void {
  if (registered) return;
  registered = true;
  Bun.plugin({
    name: "plinth-sdk",
    setup(build) {
      build.module("plinth", () => ({ loader: "object", exports: sdk }));
    },
  });
}
