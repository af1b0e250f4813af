# The production image holds the four production binaries: scanner,
# refresher, dashboard and tokenctl; the container's command picks one (the
# default is refresher). The sandbox marketplace and the demo are in a
# separate image (--target demo), never in the production one.
#
#   docker build -t token-refresher .
#   docker run --rm token-refresher scanner --dry-run
#   docker build --target demo -t token-refresher-demo .
#   docker run --rm -p 127.0.0.1:8080:8080 -e DEMO_ADDR=0.0.0.0:8080 token-refresher-demo
#
# Base images go by tag: pinning them by digest (image@sha256:…) needs the
# registry to tell the digest, which this project's build machine cannot
# reach; pin them per your registry's policy.
#
# Build stage: static binaries (no cgo: nothing to link against at run time).
# The Go release matches go.mod's toolchain line (a test in deploy/ checks).
FROM golang:1.27.3 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/scanner ./cmd/refresher ./cmd/dashboard ./cmd/tokenctl

# The demo's binaries: the demo (embedded MySQL-compatible engine and Redis)
# and the sandbox marketplace (docker-compose.yml's sandbox service).
FROM build AS build-demo
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out-demo/ ./cmd/demo ./cmd/sandbox

# Demo image: the demo's dashboard listens on 127.0.0.1:8080 unless told
# otherwise (DEMO_ADDR or --addr; in a container, DEMO_ADDR=0.0.0.0:8080 and
# publish the port on 127.0.0.1 only: its asynqmon has no credentials).
FROM gcr.io/distroless/static-debian12:nonroot AS demo
COPY --from=build-demo /out-demo/ /usr/local/bin/
USER nonroot:nonroot
CMD ["demo", "--plain"]

# Production image (the default target: the last stage): distroless static,
# no shell, no package manager, user nonroot (uid 65532). CA certificates and
# tzdata (DB_TIME_ZONE) are part of it.
FROM gcr.io/distroless/static-debian12:nonroot AS production
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080
CMD ["refresher"]
