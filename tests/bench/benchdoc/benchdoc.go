// Package benchdoc holds what the benchmark programs agree on about
// BENCHMARKS.md.
package benchdoc

// Marker is the line of BENCHMARKS.md after which sections come from other
// benchmarks than tests/bench (Go benchmarks, tests/bench/worker): tests/bench
// rewrites what is before it and keeps what is after it.
const Marker = "<!-- Sections below come from Go benchmarks named in each; make bench keeps them. -->"
