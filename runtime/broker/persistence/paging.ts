/**
 * Reads a long result in pages, each fetched whole and synchronously, so no
 * SQLite cursor stays open while a stream's consumer awaits (and a cached
 * statement is never shared by two streams at once). Keyset paging: each page
 * starts after the last key of the one before.
 */
export const PAGE_SIZE = 512;

export function* pages<Row, Key>(fetch: (after: Key, limit: number) => Row[], first: Key, keyOf: (row: Row) => Key): Generator<Row> {
  let after = first;
  for (;;) {
    const rows = fetch(after, PAGE_SIZE);
    yield* rows;
    if (rows.length < PAGE_SIZE) return;
    after = keyOf(rows[rows.length - 1]!);
  }
}
