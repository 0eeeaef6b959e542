// Package deploy holds the files people deploy latentfarm with — the
// Containerfiles, compose.yaml, the sample configs and the Grafana
// dashboard — and the tests that decode and check them against the real
// binary, compose-go and the farm's registered metrics. It has no code of
// its own that the farm imports, and must never gain any: nothing under
// cmd/, coordinator/ or node/ may depend on deploy/.
package deploy
