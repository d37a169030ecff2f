package monitor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "unset", env: map[string]string{}, want: Config{}},
		{name: "set", env: map[string]string{EnvEnabled: "true", EnvSlowQueryThreshold: "250"},
			want: Config{Enabled: true, SlowQueryThreshold: 250 * time.Millisecond}},
		{name: "disabled", env: map[string]string{EnvEnabled: "0"}, want: Config{}},
		{name: "bad bool", env: map[string]string{EnvEnabled: "yes please"}, wantErr: "AUDIT_MONITORING_ENABLED: must be true or false"},
		{name: "bad number", env: map[string]string{EnvSlowQueryThreshold: "1s"}, wantErr: "AUDIT_SLOW_QUERY_THRESHOLD: must be a whole number of milliseconds"},
		{name: "zero", env: map[string]string{EnvSlowQueryThreshold: "0"}, wantErr: "AUDIT_SLOW_QUERY_THRESHOLD: must be at least 1 millisecond"},
		{name: "huge", env: map[string]string{EnvSlowQueryThreshold: "99999999999999999"}, wantErr: "AUDIT_SLOW_QUERY_THRESHOLD: out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := configFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Config{}.Validate())
	d := Config{}.WithDefaults()
	require.Equal(t, time.Second, d.SlowQueryThreshold)
	require.Equal(t, d.SlowQueryThreshold, AlertConfig{}.WithDefaults().SlowQuery, "one default")
	require.Equal(t, d.SlowQueryThreshold, OptimizeConfig{}.WithDefaults().SlowQuery, "one default")
	require.Equal(t, 2, d.PartitionsAheadMin)
	require.NotNil(t, d.Logger)
	require.NotNil(t, d.TracerProvider)

	require.ErrorContains(t, Config{SealLagMax: -time.Second}.Validate(), "monitor: SealLagMax: must be positive")
	require.ErrorContains(t, Config{SampleSize: -1}.Validate(), "monitor: SampleSize: must be positive")
	_, err := New(Config{CheckTimeout: -1})
	require.ErrorContains(t, err, "monitor: CheckTimeout")
}
