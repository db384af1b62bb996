# cutover: the proxy (and the Bedrock stub, for local stacks) as one small static image.
# Build: docker build -t cutover .   Run: docker run -p 8080:8080 -v $PWD/cutover.yaml:/etc/cutover/cutover.yaml cutover
# No HEALTHCHECK: the ALB checks health on the traffic port (/_cutover/health by default).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0 gives a static binary; compat then uses its pure-Go zlib path (see README, "Known limits").
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/cutover ./cmd/bedrock-stub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cutover /out/bedrock-stub /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["serve", "-config", "/etc/cutover/cutover.yaml"]
