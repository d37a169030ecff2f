# PostgreSQL 15 with the auditdb extension (SQL script and the C insert
# trigger), built through PGXS exactly as `make install-extension` does.
# Build from the repository root:
#   docker build -f docker/postgres.Dockerfile -t auditdb/postgres .
FROM golang:1.26-bookworm AS script
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN mkdir -p /ext && go run ./cmd/auditworker extension-script > /ext/auditdb--0.1.0.sql

FROM postgres:15-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential postgresql-server-dev-15 libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY --from=script /ext/auditdb--0.1.0.sql ./
COPY sql/auditdb.control sql/accel/auditdb_accel.c ./
COPY sql/pgxs.mk ./Makefile
RUN make PG_CONFIG=pg_config && make PG_CONFIG=pg_config install DESTDIR=/out

FROM postgres:15-bookworm
COPY --from=build /out/ /
# CREATE EXTENSION auditdb in the first database, at first start
COPY docker/initdb/ /docker-entrypoint-initdb.d/
