# One image for every process role of the service:
#   api (default)  node dist/api/server.js
#   worker         node dist/workers/worker.js        (run as many as you like)
#   migrations     node dist/scripts/cli.js migrate   (one-shot, before api and workers)
# `npm run cli` needs tsx, a devDependency absent here: call the compiled CLI as above.
# Not built here (no Docker engine on our machines); see docker-compose.yml.

# ---- build: compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
# No dependency needs its install script (bcrypt 6 loads its prebuilt binary); package.json's
# "allowScripts" denies them, and --ignore-scripts does the same with the image's npm 10.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json knexfile.ts ./
COPY api ./api
COPY workers ./workers
COPY shared ./shared
COPY migrations ./migrations
COPY scripts ./scripts
RUN npm run build

# ---- runtime: production dependencies and the compiled code only ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
# bcrypt and RS256 share libuv's threadpool; see README, Performance.
ENV UV_THREADPOOL_SIZE=8
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# Owned by root, run as `node`: the process cannot rewrite its own code.
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8001
# Liveness only (the process answers); /health/ready also checks PostgreSQL and Redis. The slim
# image has no curl: Node's fetch does it. Worker containers disable this check (no HTTP server).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8001) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/api/server.js"]
