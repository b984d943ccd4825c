/**
 * Reads the JUnit XML that `bun test --reporter=junit` writes: the tests of one run, in the
 * order bun ran them, each with its describe path. Only the few elements bun writes are read
 * (testsuite, testcase, skipped), so a small tag scanner does instead of an XML library.
 */

export interface JunitTest {
  /** describe blocks, outermost first, then the test's own name */
  path: string[];
  seconds: number;
  skipped: boolean;
}

const TAG = /<(\/?)(testsuites|testsuite|testcase|skipped)\b((?:[^>"]|"[^"]*")*?)(\/?)>/g;
const ATTRIBUTE = /([\w:-]+)="([^"]*)"/g;
const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function unescape(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, name: string) => {
    if (name.startsWith("#x") || name.startsWith("#X")) return String.fromCodePoint(Number.parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(Number.parseInt(name.slice(1), 10));
    return ENTITIES[name] ?? whole;
  });
}

function attributes(text: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [, name, value] of text.matchAll(ATTRIBUTE)) found[name!] = unescape(value!);
  return found;
}

export function parseJunit(xml: string): JunitTest[] {
  const tests: JunitTest[] = [];
  // Suite names, outermost first; the outermost <testsuite> is the file and is not part of a name.
  const suites: string[] = [];
  let open: JunitTest | undefined;
  for (const [, closing, tag, rest, selfClosing] of xml.matchAll(TAG)) {
    if (tag === "testsuite") {
      if (closing) suites.pop();
      else if (!selfClosing) suites.push(attributes(rest!).name ?? "");
    } else if (tag === "testcase") {
      if (closing) {
        open = undefined;
        continue;
      }
      const { name = "", time = "0" } = attributes(rest!);
      const test: JunitTest = { path: [...suites.slice(1), name], seconds: Number(time) || 0, skipped: false };
      tests.push(test);
      open = selfClosing ? undefined : test;
    } else if (tag === "skipped" && !closing && open) {
      open.skipped = true;
    }
  }
  return tests;
}
