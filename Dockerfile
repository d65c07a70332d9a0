# Mimamori in a container: the appliance on Node 20, run as an unprivileged user.
#
#   docker build -t mimamori .
#   docker run -d --name mimamori \
#     -v mimamori-data:/var/lib/mimamori \
#     -v /srv/mimamori/mimamori.yaml:/etc/mimamori/mimamori.yaml:ro \
#     -p 127.0.0.1:8080:8080 mimamori
#
# The data folder, with the address key inside it, is the volume /var/lib/mimamori. Copy the
# key out of it after the first start (see docs/operations.md).

FROM node:20-bookworm-slim

WORKDIR /opt/mimamori

# npm ci runs the "prepare" script, which compiles the TypeScript sources, so the sources
# must be in place first. The development packages are removed once the build is done.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY appliance ./appliance
COPY workers ./workers
COPY control-plane ./control-plane
COPY ops ./ops
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

COPY docs ./docs

RUN groupadd --system mimamori \
 && useradd --system --gid mimamori --home-dir /var/lib/mimamori --shell /usr/sbin/nologin mimamori \
 && mkdir -p /var/lib/mimamori /etc/mimamori \
 && chown mimamori:mimamori /var/lib/mimamori \
 && chmod 0700 /var/lib/mimamori \
 && cp ops/mimamori.example.yaml /etc/mimamori/mimamori.example.yaml

# Listen on every interface inside the container; publish the ports with -p. The data folder
# is the volume, whatever the mounted configuration says.
ENV NODE_ENV=production \
    MIMAMORI_HTTP__HOST=0.0.0.0 \
    MIMAMORI_SMTP__HOST=0.0.0.0 \
    MIMAMORI_DATA_DIR=/var/lib/mimamori

VOLUME ["/var/lib/mimamori"]
EXPOSE 8080 2525

USER mimamori
STOPSIGNAL SIGTERM
CMD ["node", "bin/mimamori.js", "start", "--config", "/etc/mimamori/mimamori.yaml"]
