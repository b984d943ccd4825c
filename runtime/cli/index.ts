/** The command line: `plinth [run]`, `new`, `events tail`, `status`, `deadletters`, `keys`, `check`, `backup`, `restore`, `--help`, `--version`. */
import { relative } from "node:path";
import yargs, { type Argv } from "yargs";
import { loadConfig } from "../../config/load";
import { registerSdkModule } from "../sdk/module";
import { PlinthError } from "../errors";
import { VERSION } from "../version";
import { backupCommand } from "./backup";
import { check } from "./check";
import { deadLetters } from "./deadletters";
import { tail } from "./events";
import { scaffold } from "./new";
import { keys } from "./keys";
import { restoreCommand } from "./restore";
import { status } from "./status";
import { run, runOptions, type RunFlags } from "./run";

// Read from the environment when used, not as a yargs default: --help would print it.
const keyOption = { type: "string", describe: "API key (default: $PLINTH_API_KEY)" } as const;
const keyOf = (flag: string | undefined) => flag ?? process.env.PLINTH_API_KEY;

/** The options that may be given more than once; yargs makes an array of any other given twice. */
const REPEATABLE = new Set(["role"]);

/** A wrong command line found by a check of ours: exit 2 with the usage, like yargs' own. */
class UsageError extends Error {}

/** Refuses an option given twice (`--url a --url b`), which would otherwise reach a command as an array. */
function onceEach(argv: Record<string, unknown>): true {
  // An option is there under each of its names (-c and config, mqttPort and mqtt-port): the longest is named.
  const repeated = Object.keys(argv).filter((key) => key !== "_" && !REPEATABLE.has(key) && Array.isArray(argv[key]));
  if (repeated.length === 0) return true;
  const name = repeated.reduce((a, b) => (b.length > a.length ? b : a));
  throw new UsageError(`--${name} given ${(argv[name] as unknown[]).length} times: give it once`);
}

/** The options of the commands that work on the data folder's files (keys, check, backup, restore). */
function folderOptions<T>(y: Argv<T>) {
  return y
    .option("config", { alias: "c", type: "string", describe: "Config file (default: ./platform.config.ts if present)" })
    .option("data", { type: "string", describe: "Data folder (data.dir)" })
    .option("json", { type: "boolean", default: false, describe: "Machine-readable output" });
}

/** The data folder the config (and --data) names. */
async function dataDirOf(flags: { config?: string | undefined; data?: string | undefined }): Promise<string> {
  registerSdkModule(); // platform.config.ts may import from "plinth"
  const { config } = await loadConfig({ ...(flags.config ? { file: flags.config } : {}), overrides: { data: { dir: flags.data } } });
  return config.data.dir;
}

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
        .option("json", { type: "boolean", default: false, describe: "Print each payload as it came" })
        .option("key", keyOption),
      (flags) => {
        const key = keyOf(flags.key);
        return tail({ filter: flags.filter, url: flags.url, json: flags.json, ...(key ? { key } : {}) });
      },
    )
    .command(
      "status",
      "Show the services of a running platform: state, breaker, restarts",
      (y) => y.option("url", { type: "string", default: "http://127.0.0.1:3000", describe: "Gateway URL" }).option("key", keyOption),
      async (flags) => {
        process.exitCode = await status(flags.url, keyOf(flags.key));
      },
    )
    .command(
      "deadletters <service>",
      "List a service's dead letters, or re-drive one",
      (y) =>
        y
          .positional("service", { type: "string", demandOption: true })
          .option("redrive", { type: "number", describe: "Dead letter id to handle again" })
          .option("url", { type: "string", default: "http://127.0.0.1:3000", describe: "Gateway URL" })
          .option("key", keyOption),
      async (flags) => {
        process.exitCode = await deadLetters({
          service: flags.service,
          url: flags.url,
          ...(flags.redrive !== undefined ? { redrive: flags.redrive } : {}),
          ...(keyOf(flags.key) ? { key: keyOf(flags.key)! } : {}),
        });
      },
    )
    .command(
      "keys <command> [id]",
      "Manage API keys: keys create --role admin [--name ops], keys list, keys revoke <id or name>",
      (y) =>
        folderOptions(y)
          .positional("command", { choices: ["create", "list", "revoke"] as const, demandOption: true })
          .positional("id", { type: "string", describe: "Key id or name (revoke)" })
          .option("role", { type: "string", array: true, default: [] as string[], describe: "Role of the new key (repeatable)" })
          .option("name", { type: "string", describe: "Name of the new key (its identity, %u in MQTT ACLs)" }),
      async (flags) => {
        if (flags.command === "revoke" && !flags.id) {
          console.error("plinth: keys revoke needs the key's id or name\n");
          process.exit(2);
        }
        process.exitCode = keys(flags.command, {
          dataDir: await dataDirOf(flags),
          roles: flags.role.map(String),
          json: flags.json,
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.id ? { id: flags.id } : {}),
        });
      },
    )
    .command(
      "check [service]",
      "Check the integrity of every SQLite file in the data folder (or one service's), running or not",
      (y) => folderOptions(y.positional("service", { type: "string", describe: "Service name (its <service>.sqlite; _broker for the broker's)" })),
      async (flags) => {
        process.exitCode = check({ dataDir: await dataDirOf(flags), json: flags.json, ...(flags.service !== undefined ? { service: flags.service } : {}) });
      },
    )
    .command(
      "backup <folder>",
      "Write a consistent copy of every SQLite file in the data folder into a new or empty folder, while the platform runs",
      (y) => folderOptions(y.positional("folder", { type: "string", demandOption: true, describe: "Backup folder (created if missing)" })),
      async (flags) => {
        process.exitCode = backupCommand({ dataDir: await dataDirOf(flags), folder: flags.folder, json: flags.json });
      },
    )
    .command(
      "restore <folder>",
      "Put a backup back into the data folder of a stopped platform",
      (y) => folderOptions(y.positional("folder", { type: "string", demandOption: true, describe: "Folder written by plinth backup" })),
      async (flags) => {
        process.exitCode = restoreCommand({ dataDir: await dataDirOf(flags), folder: flags.folder, json: flags.json });
      },
    )
    .version(VERSION)
    .alias("v", "version")
    .help()
    .alias("h", "help")
    .strict()
    .check(onceEach)
    .fail((msg, err, y) => {
      if (err && !(err instanceof UsageError)) throw err;
      console.error(`${msg}\n`);
      y.showHelp();
      process.exit(2);
    })
    .parseAsync();
}

/** Exit 1 with one line: the error's code (or name) and message; never a stack trace. */
export function reportFatal(err: unknown): never {
  if (err instanceof PlinthError) console.error(`plinth: ${err.code}: ${err.message}`);
  else if (err instanceof Error) console.error(`plinth: ${err.message || err.name}`);
  else console.error(`plinth: ${String(err)}`);
  process.exit(1);
}
