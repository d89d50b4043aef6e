// Builds the OpenAPI 3.1 document from the route registry: the same schemas that validate requests.
import type { Config } from '../../shared/config';
import type { RouteRegistry, RouteSpec } from '../http/route';

type Json = Record<string, unknown>;

const Problem: Json = {
  type: 'object',
  required: ['type', 'title', 'status'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    request_id: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
  },
};

/** TypeBox schemas carry symbol keys; JSON round-tripping leaves plain JSON Schema. */
const plain = (schema: unknown): Json => JSON.parse(JSON.stringify(schema));

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
  for (const [status, response] of Object.entries(spec.responses)) {
    const type = response.contentType ?? (response.schema ? 'application/json' : undefined);
    out[status] = {
      description: response.description,
      ...(type && { content: { [type]: response.schema ? { schema: plain(response.schema) } : {} } }),
    };
  }
  const errors: Record<number, string> = {
    400: 'Invalid input (problem+json naming each field)',
    500: 'Unexpected error',
    503: 'A dependency is down; retry later',
  };
  if (spec.security && spec.security !== 'none') Object.assign(errors, { 401: 'Missing or invalid credentials', 403: 'Not allowed' });
  for (const [status, description] of Object.entries(errors)) {
    if (!out[status])
      out[status] = { description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
  }
  return out;
}

export function buildOpenApi(config: Config, registry: RouteRegistry): Json {
  const paths: Record<string, Json> = {};
  for (const spec of registry.routes) {
    const path = spec.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation: Json = {
      operationId: `${spec.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: spec.summary,
      tags: spec.tags,
      parameters: parametersOf(spec),
      responses: responsesOf(spec),
    };
    if (spec.body) operation.requestBody = { required: true, content: { 'application/json': { schema: plain(spec.body) } } };
    if (spec.security === 'bearer') operation.security = [{ bearer: [] }];
    if (spec.security === 'basic-or-bearer') operation.security = [{ basic: [] }, { bearer: [] }];
    if (spec.security === 'none' || !spec.security) operation.security = [];
    paths[path] = { ...(paths[path] ?? {}), [spec.method]: operation };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'User Service',
      version: config.version,
      description: 'Identity, authentication and authorization for the trading platform. Errors are application/problem+json (RFC 9457).',
    },
    servers: [{ url: config.publicBaseUrl }],
    paths,
    components: {
      schemas: { Problem },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        basic: { type: 'http', scheme: 'basic', description: "Operators only (Bull Board): an admin's email and password." },
      },
    },
  };
}
