// The one form of an email address for every lookup, rate limit and uniqueness check (DESIGN.md,
// "Identifiers and strings"). Addresses are stored as typed and compared as `citext`, which
// lower-cases each character on its own (libc towlower under the database's ctype). JavaScript's
// toLowerCase applies Unicode's special casing instead, turning İ (U+0130) into two characters, so
// a limiter keyed on it would count "admİn@…" apart from the "admin@…" the database finds. Each
// code point is therefore lower-cased on its own and stays one code point, as in the database; a
// test compares the two on this database.
export function normalizeEmail(address: string): string {
  return [...address.trim()].map((character) => [...character.toLowerCase()][0] ?? character).join('');
}
