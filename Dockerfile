# A static tokenmq binary on a minimal base image.
#   docker build -t tokenmq .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /tokenmq ./cmd/tokenmq

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /tokenmq /tokenmq
EXPOSE 1883 8083 8080
ENTRYPOINT ["/tokenmq"]
CMD ["serve", "--data-dir", "/data"]
