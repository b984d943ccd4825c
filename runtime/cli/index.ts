/** The command line: `plinth [run]`, `plinth new <name>`, `--help`, `--version`. */
import { relative } from "node:path";
import yargs from "yargs";
import { PlinthError } from "../errors";
import { VERSION } from "../version";
import { scaffold } from "./new";
import { run, runOptions, type RunFlags } from "./run";

export async function cli(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("plinth")
    .usage("$0 <command> [options]\n\nA single-binary platform for event-driven services.")
    .command(["run", "$0"], "Start the platform: MQTT broker, gateway and every plugin", (y) => runOptions(y), (flags) =>
      run(flags as RunFlags),
    )
    .command(
      "new <name>",
      "Scaffold a plugin in the plugins folder",
      (y) =>
        y
          .positional("name", { type: "string", demandOption: true, describe: "Service name (lower-case, digits, '-')" })
          .option("plugins", { type: "string", default: "./plugins", describe: "Plugins folder" }),
      (flags) => {
        const file = scaffold(flags.name, flags.plugins);
        console.log(`created ${relative(process.cwd(), file)}\nrun \`plinth run\` and try: curl localhost:3000/api/${flags.name}`);
      },
    )
    .version(VERSION)
    .alias("v", "version")
    .help()
    .alias("h", "help")
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      console.error(`${msg}\n`);
      y.showHelp();
      process.exit(2);
    })
    .parseAsync();
}

export function reportFatal(err: unknown): never {
  if (err instanceof PlinthError) console.error(`plinth: ${err.code}: ${err.message}`);
  else console.error(`plinth: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
}
