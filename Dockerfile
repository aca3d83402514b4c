# graft: one image for the api (default CMD) and the workers (compose overrides the command with
# `node dist/workers/main.js`).
#
# The base is pinned to Node 22 on purpose: @tensorflow/tfjs-node 4.22 breaks on Node >= 23 (it calls
# the removed util.isNullOrUndefined, tensorflow/tfjs#8609). Do not move to node:lts / node:23+ until
# tfjs-node is fixed. Build stage and runtime stage must share the same base (the native addon is
# linked against this glibc) and the same WORKDIR (the addon finds libtensorflow through an rpath
# relative to node_modules/@tensorflow/tfjs-node).

# ---------------------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app

# tfjs-node's install script downloads libtensorflow and a prebuilt N-API addon; if no prebuilt
# addon matches, node-pre-gyp falls back to compiling it, which needs python3/make/g++. They only
# live in this stage, so they cost build time, not image size.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, so source edits do not invalidate the (slow) install layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# tfjs-node is an optionalDependency: if its download failed, npm ci still exits 0 and we would
# silently ship an image that trains ~20x slower on the pure-JS backend. Refuse to build instead.
RUN node -e "const tf = require('@tensorflow/tfjs-node'); \
if (tf.getBackend() !== 'tensorflow') throw new Error('tfjs-node loaded but backend is ' + tf.getBackend()); \
console.log('tfjs-node', tf.version.tfjs, 'backend', tf.getBackend(), 'sum', tf.tensor([1, 2, 3]).sum().dataSync()[0]);"

# ---------------------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
WORKDIR /app

ENV NODE_ENV=production \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    GRAFT_BACKEND=tensorflow

# Application files stay root-owned (read-only for the service); only the volume is writable.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/openapi ./openapi

# Check again in the final image (shared libraries of the runtime stage, not the build stage).
RUN node -e "require('@tensorflow/tfjs-node')"

# /data must exist in the image, owned by `node`: Docker seeds a new named volume with the
# ownership of the mount point, so api and workers can write to graft-data without running as root.
RUN mkdir -p /data && chown node:node /data

USER node
EXPOSE 3000

# No curl in slim images: ask node. Meaningful for the api only (compose disables it for workers).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "dist/src/server.js"]
