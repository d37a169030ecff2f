package monitor_test

import (
	"fmt"

	"github.com/auditdb/auditdb/monitor"
)

func ExampleNormalizeSQL() {
	fmt.Println(monitor.NormalizeSQL(`SELECT * FROM audit.audit_log
		WHERE principal_id = 'dr-house' -- from the ward screen
		  AND "timestamp" > $1 LIMIT 50`))
	// Output: SELECT * FROM audit.audit_log WHERE principal_id = ? AND "timestamp" > $1 LIMIT ?
}
