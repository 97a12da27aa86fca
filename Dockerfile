# syntax=docker/dockerfile:1
# taskmanager: the taskscheduler and taskconsumer CLIs on Node 20. Used by docker-compose.yml.
#
#   docker build -t taskmanager .
#   docker run --rm taskmanager taskscheduler validate -s /app/config/taskscheduler.json

# --- build: compile TypeScript with the dev dependencies -----------------------------------------------------------
FROM node:20-slim AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused while only sources change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# --- runtime: production dependencies and the compiled output only ------------------------------------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The package.json "bin" names as commands, without `npm link`: small wrappers that exec node, so the CLI is the
# process that receives SIGTERM (tini from `init: true` forwards it) and no shebang or file mode is relied on.
RUN printf '#!/bin/sh\nexec node /app/dist/src/scheduler/cli.js "$@"\n' >/usr/local/bin/taskscheduler \
  && printf '#!/bin/sh\nexec node /app/dist/src/consumer/cli.js "$@"\n' >/usr/local/bin/taskconsumer \
  && printf '#!/bin/sh\nexec node /app/dist/src/api/cli.js "$@"\n' >/usr/local/bin/taskapi \
  && chmod 755 /usr/local/bin/taskscheduler /usr/local/bin/taskconsumer /usr/local/bin/taskapi
USER node
CMD ["taskscheduler", "--help"]
