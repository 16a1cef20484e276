# zonegate as an image: `docker build -t zonegate .`, then
#   docker run -p 8080:8080 -v "$PWD/routes.yaml:/app/routes.yaml:ro" zonegate
# (the default command runs /app/routes.yaml; `docker run zonegate demo` runs the demo, see docker-compose.yml).
FROM node:24-bookworm-slim

WORKDIR /app
# Node's compile cache lives in the image, filled at build time (bin/warm-compile-cache.js): the gateway then never
# loads the TypeScript stripper (README "Memory").
ENV NODE_ENV=production \
    NODE_COMPILE_CACHE=/app/.node-compile-cache \
    ZONEGATE_LISTEN=0.0.0.0:8080

# Production dependencies only (the image's own Node 24 runs the gateway; the `node` devDependency is for the
# repo's scripts), in a layer of their own that a change to the sources does not rebuild.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
# What the postinstall script does on `npm install`: every module of src/ into the compile cache.
RUN node bin/warm-compile-cache.js && mkdir -p /app/.node-compile-cache && chown -R node:node /app/.node-compile-cache
COPY routes.yaml ./

USER node
EXPOSE 8080 9901
# Run as a file, so the node flags on its first line apply; the gateway drains on SIGTERM (Docker's stop signal).
ENTRYPOINT ["/app/bin/zonegate.js"]
CMD ["run", "--config", "/app/routes.yaml"]
