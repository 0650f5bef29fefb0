# syntax=docker/dockerfile:1
# spot: the default component and the server, built with the Makefile's own
# steps (`make build`), run as non-root on a distroless base.
#
#   docker build -t spot .                      # the service
#   docker build --target fake -t spot-fake .   # the fake Coinbase (offline demo)

FROM rust:1.95-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins the toolchain and lists the wasm32-wasip2 target:
# installing it first keeps it in its own layer.
COPY rust-toolchain.toml ./
RUN rustup show active-toolchain && rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=spot-target \
    make build \
 && cargo build --release -p spot-fake-coinbase --bin fake-coinbase \
 && mkdir -p /out \
 && cp target/release/spot-server target/release/fake-coinbase /out/ \
 && cp target/wasm32-wasip2/component/spot_guest.wasm /out/

# The fake Coinbase: `fake-coinbase --ws 0.0.0.0:8701 --rest 0.0.0.0:8702`.
FROM gcr.io/distroless/cc-debian12:nonroot AS fake
COPY --from=build /out/fake-coinbase /app/fake-coinbase
EXPOSE 8701 8702
ENTRYPOINT ["/app/fake-coinbase", "--ws", "0.0.0.0:8701", "--rest", "0.0.0.0:8702"]

# The service. TLS roots are built in (webpki-roots), so the image needs no
# CA bundle; the compiled-component cache goes to a writable /tmp.
FROM gcr.io/distroless/cc-debian12:nonroot AS spot
COPY --from=build /out/spot-server /app/spot-server
COPY --from=build /out/spot_guest.wasm /app/components/spot_guest.wasm
ENV COMPONENT_PATH=/app/components/spot_guest.wasm \
    SPOT_DATA_DIR=/tmp/spot \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/app/spot-server"]
