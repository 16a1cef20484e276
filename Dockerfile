# zonegate as an image, built from the npm package this checkout packs (what `npm install zonegate` would install):
#   docker build -t zonegate .
#   docker run -p 8080:8080 -v "$PWD/routes.yaml:/app/routes.yaml:ro" zonegate
# The default command runs /app/routes.yaml (the example config); docker-compose.yml runs the full demo.

# Stage 1: the package. `npm pack` runs prepack, which builds dist/ with the devDependencies (TypeScript).
FROM node:24-bookworm-slim AS package
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm pack --pack-destination /tmp && mkdir /package && tar -xzf /tmp/zonegate-*.tgz --strip-components=1 -C /package && cp package-lock.json /package/

# Stage 2: the package's files and its production dependencies, at the versions package-lock.json pins.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    ZONEGATE_LISTEN=0.0.0.0:8080
COPY --from=package /package ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

USER node
EXPOSE 8080 9901
# /healthz on the admin listener (it answers without the admin token); a config of your own: override this too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/app/bin/zonegate.js", "health", "--config", "/app/routes.yaml"]
# Run as a file, so the node flags on its first line apply; the gateway drains on SIGTERM (Docker's stop signal).
ENTRYPOINT ["/app/bin/zonegate.js"]
CMD ["run", "--config", "/app/routes.yaml"]
