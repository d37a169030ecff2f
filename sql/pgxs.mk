# PGXS build of the auditdb extension: run from build/extension by
# `make install-extension`, which generates auditdb--0.1.0.sql from sql/ and
# copies the optional C accelerator (sql/accel) beside it.
EXTENSION = auditdb
DATA = auditdb--0.1.0.sql
MODULES = auditdb_accel
SHLIB_LINK = -lcrypto
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
