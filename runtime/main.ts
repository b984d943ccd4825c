/** Binary entry: argv → cli. */
import { cli, reportFatal } from "./cli/index";

await cli(process.argv.slice(2)).catch(reportFatal);
