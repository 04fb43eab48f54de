# The strata frontend image: a static binary on scratch that BuildKit runs
# through its gateway API. Use it with "# syntax=REGISTRY/strata/frontend:TAG"
# or --build-arg BUILDKIT_SYNTAX=REGISTRY/strata/frontend:TAG.
#
#   docker buildx build -t REGISTRY/strata/frontend:TAG --push .
#   docker buildx build --target prebuilt -t ... .   (after 'make build', no Go image needed)

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X github.com/strata-build/strata/frontend.Version=${VERSION}" \
    -o /out/strata-frontend ./cmd/strata-frontend

FROM scratch AS frontend-base
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts,moby.buildkit.frontend.gitquerystring,moby.buildkit.frontend.contexts.zstd"
ENTRYPOINT ["/bin/strata-frontend"]

# prebuilt packs a binary built on the host (CGO_ENABLED=0 go build -o .bin/strata-frontend ./cmd/strata-frontend).
FROM frontend-base AS prebuilt
COPY .bin/strata-frontend /bin/strata-frontend

FROM frontend-base AS frontend
COPY --from=build /out/strata-frontend /bin/strata-frontend
