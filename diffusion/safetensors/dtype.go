package safetensors

import "fmt"

// DType is the element type of a stored tensor, spelled in headers as in the
// safetensors specification ("F32", "BF16", ...).
type DType uint8

// Element types of the safetensors format. Only F32, F16, BF16 and F64 can be
// converted to float32; the others are parsed so that files holding them (an
// I64 position_ids buffer, say) still open.
const (
	Invalid DType = iota
	F64
	F32
	F16
	BF16
	I64
	I32
	I16
	I8
	U64
	U32
	U16
	U8
	BOOL
	F8E4M3
	F8E5M2
)

var dtypeNames = [...]string{
	Invalid: "INVALID",
	F64:     "F64",
	F32:     "F32",
	F16:     "F16",
	BF16:    "BF16",
	I64:     "I64",
	I32:     "I32",
	I16:     "I16",
	I8:      "I8",
	U64:     "U64",
	U32:     "U32",
	U16:     "U16",
	U8:      "U8",
	BOOL:    "BOOL",
	F8E4M3:  "F8_E4M3",
	F8E5M2:  "F8_E5M2",
}

var dtypeSizes = [...]int{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	BOOL: 1, F8E4M3: 1, F8E5M2: 1,
}

// String returns the header spelling of d ("F32").
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes, 0 for an invalid DType.
func (d DType) Size() int {
	if d == Invalid || int(d) >= len(dtypeSizes) {
		return 0
	}
	return dtypeSizes[d]
}

// ParseDType returns the DType spelled s in a header, or false.
func ParseDType(s string) (DType, bool) {
	for d := F64; int(d) < len(dtypeNames); d++ {
		if dtypeNames[d] == s {
			return d, true
		}
	}
	return Invalid, false
}
