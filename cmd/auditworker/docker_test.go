package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// No Docker engine runs where the tests run, so the docker/ files are
// checked by reading them: the compose file parses, every build names a
// Dockerfile that exists, every file a Dockerfile copies from the build
// context exists, and every AUDIT_* variable given to auditworker is one
// the CLI reads for that command.
func TestDockerFiles(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "docker", "compose.yaml"))
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	require.Subset(t, keys(compose.Services), []string{"postgres", "redis", "migrate", "auditworker"})

	app := newApp(nil, nil)
	workerServices := 0
	for name, svc := range compose.Services {
		if svc.Build == nil {
			require.NotEmpty(t, svc.Image, "service %s: build or image", name)
			continue
		}
		ctxDir := filepath.Join(root, "docker", svc.Build.Context)
		dockerfile := filepath.Join(ctxDir, svc.Build.Dockerfile)
		require.FileExists(t, dockerfile, "service %s", name)
		checkDockerfile(t, ctxDir, dockerfile)
		if svc.Build.Dockerfile != "docker/Dockerfile" {
			continue
		}
		workerServices++
		require.NotEmpty(t, svc.Command, "service %s runs an auditworker command", name)
		cmd := app.Command(svc.Command[0])
		require.NotNil(t, cmd, "service %s: auditworker has no command %q", name, svc.Command[0])
		known := envVars(append(slices.Clone(app.Flags), cmd.Flags...))
		for env := range svc.Environment {
			if strings.HasPrefix(env, "AUDIT_") {
				require.Contains(t, known, env, "service %s: `auditworker %s` does not read %s", name, svc.Command[0], env)
			}
		}
		require.Contains(t, svc.Environment, "AUDIT_DB_URL", "service %s", name)
	}
	require.Equal(t, 2, workerServices, "migrate and auditworker")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func envVars(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			out = append(out, e.GetEnvVars()...)
		}
	}
	return out
}

// checkDockerfile requires a FROM, and that every COPY without --from names
// files present in the build context.
func checkDockerfile(t *testing.T, ctxDir, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	froms := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms++
		case "COPY":
			args := fields[1:]
			if len(args) > 0 && strings.HasPrefix(args[0], "--from") {
				continue
			}
			require.GreaterOrEqual(t, len(args), 2, "%s: %s", path, sc.Text())
			for _, src := range args[:len(args)-1] {
				if src == "." {
					continue
				}
				_, err := os.Stat(filepath.Join(ctxDir, src))
				require.NoError(t, err, "%s copies %s, which is not in the build context", path, src)
			}
		}
	}
	require.NoError(t, sc.Err())
	require.Positive(t, froms, path)
}
