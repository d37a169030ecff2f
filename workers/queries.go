package workers

import _ "embed"

// Queries kept as .sql files (STYLE: SQL is reviewable as SQL).
var (
	//go:embed queries/archive_rows_retention_end.sql
	archiveRowsRetentionEndSQL string
)
