// Strings as the service compares them (DESIGN.md, "Identifiers and strings"), applied to every
// request's body, query and path at the edge: a NUL character is refused (PostgreSQL cannot store
// it in text, and it hides the rest of a value from anything written in C), and UUIDs are
// lower-cased, so every key, cache entry and comparison sees one spelling of an id.
import type { TSchema } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors';

type Where = 'body' | 'query' | 'params';

/**
 * How deep a request's JSON may nest. No schema of ours goes past a few levels, and everything
 * that walks a value (the NUL check below, ajv, the UUID lower-casing, the logger) recurses: a
 * body of 10,000 nested arrays fits in BODY_LIMIT_KB yet overflowed the stack (a 500).
 */
export const MAX_NESTING = 32;

/** One error when the value nests deeper than MAX_NESTING; walked without recursion. */
export function tooDeep(value: unknown, where: Where): FieldError[] {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth >= MAX_NESTING) return [{ field: where, message: `must not nest deeper than ${MAX_NESTING} levels` }];
    for (const inner of Object.values(v)) stack.push([inner, depth + 1]);
  }
  return [];
}

const fieldName = (where: Where, path: string[]) => [where === 'body' ? '' : where, ...path].filter(Boolean).join('.') || where;

/** One error per string (or key) holding U+0000, named like the validation errors. */
export function nulCharacters(value: unknown, where: Where, path: string[] = []): FieldError[] {
  if (typeof value === 'string')
    return value.includes('\u0000') ? [{ field: fieldName(where, path), message: 'must not contain NUL (U+0000)' }] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => nulCharacters(item, where, [...path, String(i)]));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key.includes('\u0000')
      ? [{ field: fieldName(where, path), message: 'must not contain NUL (U+0000) in a property name' }]
      : nulCharacters(inner, where, [...path, key]),
  );
}

interface SchemaShape {
  format?: string;
  properties?: Record<string, SchemaShape>;
  items?: SchemaShape;
  anyOf?: SchemaShape[];
  oneOf?: SchemaShape[];
}

const isUuid = (schema: SchemaShape | undefined): boolean =>
  schema?.format === 'uuid' || [...(schema?.anyOf ?? []), ...(schema?.oneOf ?? [])].some(isUuid);

/** Lower-cases, in place, every string the (already validated) value holds where its schema says `format: uuid`. */
export function lowerCaseUuids<T>(schema: TSchema | SchemaShape | undefined, value: T): T {
  const shape = schema as SchemaShape | undefined;
  if (!shape || !value || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const items: unknown[] = value;
    items.forEach((item, i) => {
      items[i] = typeof item === 'string' && isUuid(shape.items) ? item.toLowerCase() : lowerCaseUuids(shape.items, item);
    });
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const [key, property] of Object.entries(shape.properties ?? {})) {
    // An absent property stays absent: `{name}` must not become `{name, phone: undefined, …}`.
    if (!(key in record)) continue;
    const inner = record[key];
    record[key] = typeof inner === 'string' && isUuid(property) ? inner.toLowerCase() : lowerCaseUuids(property, inner);
  }
  return value;
}
