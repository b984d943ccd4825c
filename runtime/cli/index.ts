/** The command line: `plinth [run]`, `plinth new <name>`, `--help`, `--version`. */
import { relative } from "node:path";
import yargs from "yargs";
import { PlinthError } from "../errors";
import { VERSION } from "../version";
import { deadLetters } from "./deadletters";
import { tail } from "./events";
import { scaffold } from "./new";
import { status } from "./status";
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
    .command("events <command> <filter>", "Print events live: events tail 'events/#'", (y) =>
      y
        .positional("command", { choices: ["tail"] as const, demandOption: true })
        .positional("filter", { type: "string", demandOption: true, describe: "MQTT topic filter" })
        .option("url", { type: "string", default: "mqtt://127.0.0.1:1883", describe: "Broker URL" })
        .option("json", { type: "boolean", default: false, describe: "Print each payload as it came" }),
      (flags) => tail({ filter: flags.filter, url: flags.url, json: flags.json }),
    )
    .command(
      "status",
      "Show the services of a running platform: state, breaker, restarts",
      (y) => y.option("url", { type: "string", default: "http://127.0.0.1:3000", describe: "Gateway URL" }),
      async (flags) => {
        process.exitCode = await status(flags.url);
      },
    )
    .command(
      "deadletters <service>",
      "List a service's dead letters, or re-drive one",
      (y) =>
        y
          .positional("service", { type: "string", demandOption: true })
          .option("redrive", { type: "number", describe: "Dead letter id to handle again" })
          .option("url", { type: "string", default: "http://127.0.0.1:3000", describe: "Gateway URL" }),
      async (flags) => {
        process.exitCode = await deadLetters({ service: flags.service, url: flags.url, ...(flags.redrive !== undefined ? { redrive: flags.redrive } : {}) });
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
