# One image holds every binary: scanner, refresher, sandbox, dashboard and
# tokenctl; the container's command picks one (the default is refresher).
#
#   docker build -t token-refresher .
#   docker run --rm token-refresher scanner --dry-run
#
# Build stage: static binaries (no cgo: nothing to link against at run time).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

# Run stage: distroless static, no shell, no package manager, user nonroot
# (uid 65532). CA certificates and tzdata (DB_TIME_ZONE) are part of it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080
CMD ["refresher"]
