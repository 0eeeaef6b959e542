package comfy

import (
	"fmt"
	"sort"
	"strings"
)

// Error types ComfyUI answers a refused prompt with (execution.py
// validate_prompt and validate_inputs): clients switch on them, so they
// are ComfyUI's exact strings, kept here in one place.
const (
	errNoPrompt       = "no_prompt"
	errInvalidPrompt  = "invalid_prompt"
	errNoOutputs      = "prompt_no_outputs"
	errOutputsInvalid = "prompt_outputs_failed_validation"
	errMissingInput   = "required_input_missing"
	errBadLink        = "bad_linked_input"
	errTypeMismatch   = "return_type_mismatch"
	errInputType      = "invalid_input_type"
	errTooSmall       = "value_smaller_than_min"
	errTooBig         = "value_bigger_than_max"
	errNotInList      = "value_not_in_list"
	errCustom         = "custom_validation_failed"
	// errFarm is the farm's own: the job could not be stored or started.
	errFarm = "farm_unavailable"
)

// Error is one problem, as ComfyUI reports it.
type Error struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

// NodeError lists the problems of one node of a workflow.
type NodeError struct {
	Errors           []Error  `json:"errors"`
	DependentOutputs []string `json:"dependent_outputs"`
	ClassType        string   `json:"class_type"`
}

// PromptError is the body of a refused POST /prompt (status 400).
type PromptError struct {
	Err        Error                `json:"error"`
	NodeErrors map[string]NodeError `json:"node_errors"`
}

// Error implements error.
func (e *PromptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "comfy: %s", e.Err.Message)
	if e.Err.Details != "" {
		fmt.Fprintf(&b, ": %s", e.Err.Details)
	}
	ids := make([]string, 0, len(e.NodeErrors))
	for id := range e.NodeErrors {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, ne := range e.NodeErrors[id].Errors {
			fmt.Fprintf(&b, "; node %s (%s): %s: %s", id, e.NodeErrors[id].ClassType, ne.Message, ne.Details)
		}
	}
	return b.String()
}

// inputError is a problem with input name of a node.
func inputError(typ, message, name, details string, extra map[string]any) Error {
	if extra == nil {
		extra = map[string]any{}
	}
	extra["input_name"] = name
	return Error{Type: typ, Message: message, Details: details, ExtraInfo: extra}
}

// customError is a farm rule a node's input breaks, shaped as ComfyUI's
// VALIDATE_INPUTS failures are.
func customError(name, format string, args ...any) Error {
	return inputError(errCustom, "Custom validation failed for node", name,
		name+" - "+fmt.Sprintf(format, args...), nil)
}

// promptError is a refusal of the whole prompt without node errors.
func promptError(typ, message, details string) *PromptError {
	return &PromptError{Err: Error{Type: typ, Message: message, Details: details, ExtraInfo: map[string]any{}},
		NodeErrors: map[string]NodeError{}}
}

// pyList renders options as Python prints a list, as ComfyUI's messages do.
func pyList(options []string) string {
	q := make([]string, len(options))
	for i, o := range options {
		q[i] = "'" + o + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
