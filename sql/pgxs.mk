# PGXS build of the auditdb extension: run from build/extension by
# `make install-extension`, which generates auditdb--0.1.0.sql from sql/.
EXTENSION = auditdb
DATA = auditdb--0.1.0.sql
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
