// Builds the OpenAPI 3.1 document from the route registry: the same schemas that validate requests
// and answers (./http/responses.ts says what each route may answer).
import type { Config } from '../../shared/config';
import type { RouteRegistry, RouteSpec } from '../http/route';
import { declaredResponses, Problem, PROBLEM_CONTENT_TYPE } from '../http/responses';

type Json = Record<string, unknown>;

/** TypeBox schemas carry symbol keys; JSON round-tripping leaves plain JSON Schema. */
const plain = (schema: unknown): Json => JSON.parse(JSON.stringify(schema)) as Json;

/** Operations of these tags come last: what readers of the document look for first is the API. */
const TRAILING_TAGS = ['docs', 'health'];

function parametersOf(spec: RouteSpec): Json[] {
  const out: Json[] = [];
  for (const [where, schema] of [
    ['path', spec.params],
    ['query', spec.query],
  ] as const) {
    if (!schema) continue;
    const s = plain(schema) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, property] of Object.entries(s.properties ?? {})) {
      out.push({
        name,
        in: where,
        required: where === 'path' || (s.required ?? []).includes(name),
        schema: property,
        ...(property.description ? { description: property.description } : {}),
      });
    }
  }
  return out;
}

function responsesOf(spec: RouteSpec): Json {
  const out: Json = {};
  for (const [status, response] of Object.entries(declaredResponses(spec))) {
    const type = response.contentType ?? (response.schema ? 'application/json' : undefined);
    const schema = response.schema === Problem ? { $ref: '#/components/schemas/Problem' } : response.schema && plain(response.schema);
    const types = type ? [type, ...(response.alsoContentTypes ?? [])] : [];
    const content = Object.fromEntries(types.map((t) => [t, schema ? { schema } : {}]));
    out[status] = { description: response.description, ...(types.length && { content }) };
  }
  return out;
}

/** The request body, with its first example where Swagger UI's "Try it out" picks it up. */
function requestBodyOf(spec: RouteSpec): Json | undefined {
  if (!spec.body) return undefined;
  const schema = plain(spec.body);
  const [example] = (schema.examples as unknown[] | undefined) ?? [];
  return { required: true, content: { 'application/json': { schema, ...(example !== undefined && { example }) } } };
}

export function buildOpenApi(config: Config, registry: RouteRegistry): Json {
  const paths: Record<string, Json> = {};
  const trailing = (spec: RouteSpec) => (spec.tags.some((tag) => TRAILING_TAGS.includes(tag)) ? 1 : 0);
  for (const spec of [...registry.routes].sort((a, b) => trailing(a) - trailing(b))) {
    const path = spec.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation: Json = {
      operationId: `${spec.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: spec.summary,
      tags: spec.tags,
      parameters: parametersOf(spec),
      responses: responsesOf(spec),
      security: spec.security === 'bearer' ? [{ bearer: [] }] : [],
    };
    const requestBody = requestBodyOf(spec);
    if (requestBody) operation.requestBody = requestBody;
    paths[path] = { ...(paths[path] ?? {}), [spec.method]: operation };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'User Service',
      version: config.version,
      description: `Identity, authentication and authorization for the trading platform. Errors are ${PROBLEM_CONTENT_TYPE} (RFC 9457).`,
    },
    servers: [{ url: config.publicBaseUrl }],
    paths,
    components: {
      schemas: { Problem: plain(Problem) },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    },
    // Tags in the order the document shows them: the API first, its plumbing last.
    tags: [...new Set(registry.routes.flatMap((r) => r.tags))]
      .sort((a, b) => Number(TRAILING_TAGS.includes(a)) - Number(TRAILING_TAGS.includes(b)))
      .map((name) => ({ name })),
  };
}
