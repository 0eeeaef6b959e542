package cpu

import (
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/conformance"
)

func TestCPU_Conformance(t *testing.T) {
	conformance.Run(t, New(), 2e-5)
}
