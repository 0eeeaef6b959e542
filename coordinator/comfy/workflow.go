package comfy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// node is one node of a workflow in ComfyUI's API format:
// "<id>": {"class_type": "...", "inputs": {...}, "_meta": {"title": "..."}}.
type node struct {
	id     string
	class  *class
	inputs map[string]json.RawMessage
	// vals holds the checked widget values: int64, float64, string, or
	// []int64 for a list of seeds.
	vals map[string]any
	// links holds the checked link inputs.
	links map[string]linkRef
}

// linkRef is a link input: [source node id, output slot].
type linkRef struct {
	node string
	slot int
}

// workflow is a parsed prompt whose nodes all have supported classes.
type workflow struct {
	nodes map[string]*node
}

// parseWorkflow decodes a prompt and refuses it, as ComfyUI does before
// validating any input, when a node has no class_type or a class the farm
// does not run. Every unsupported node is named in the node errors.
func parseWorkflow(raw json.RawMessage) (*workflow, *PromptError) {
	var nodes map[string]json.RawMessage
	if err := json.Unmarshal(raw, &nodes); err != nil || nodes == nil {
		return nil, promptError(errInvalidPrompt, "Cannot execute because the prompt is not a JSON object of nodes.",
			fmt.Sprintf("%v", err))
	}
	w := &workflow{nodes: map[string]*node{}}
	unknown := map[string]NodeError{}
	first := ""
	for _, id := range sortedIDs(nodes) {
		var n struct {
			Class  *string                    `json:"class_type"`
			Inputs map[string]json.RawMessage `json:"inputs"`
		}
		if err := json.Unmarshal(nodes[id], &n); err != nil || n.Class == nil {
			return nil, promptError(errInvalidPrompt, "Cannot execute because a node is missing the class_type property.",
				fmt.Sprintf("Node ID '#%s'", id))
		}
		c, ok := classByName(*n.Class)
		if !ok {
			e := Error{Type: errInvalidPrompt, Message: fmt.Sprintf("Cannot execute because node %s does not exist.", *n.Class),
				Details:   fmt.Sprintf("Node ID '#%s'", id),
				ExtraInfo: map[string]any{"node_id": id, "class_type": *n.Class, "supported_classes": classNames()}}
			unknown[id] = NodeError{Errors: []Error{e}, DependentOutputs: []string{}, ClassType: *n.Class}
			if first == "" {
				first = id
			}
			continue
		}
		w.nodes[id] = &node{id: id, class: c, inputs: n.Inputs, vals: map[string]any{}, links: map[string]linkRef{}}
	}
	if first != "" {
		e := unknown[first].Errors[0]
		pe := promptError(errInvalidPrompt, e.Message,
			e.Details+": the farm runs "+strings.Join(classNames(), ", "))
		pe.NodeErrors = unknown
		return nil, pe
	}
	return w, nil
}

// sortedIDs orders node ids as numbers where they are numbers.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		x, errX := strconv.Atoi(ids[a])
		y, errY := strconv.Atoi(ids[b])
		if errX == nil && errY == nil && x != y {
			return x < y
		}
		return ids[a] < ids[b]
	})
	return ids
}

// outputs lists the output nodes (SaveImage, PreviewImage) in id order.
func (w *workflow) outputs() []string {
	var out []string
	for _, id := range sortedIDs(w.nodes) {
		if w.nodes[id].class.outputNode {
			out = append(out, id)
		}
	}
	return out
}

// checker validates node inputs as ComfyUI's validate_inputs does, node by
// node through the links, and collects every problem per node.
type checker struct {
	w     *workflow
	state map[string]int // 0 not seen, 1 being checked, 2 valid, 3 invalid
	errs  map[string][]Error
}

func newChecker(w *workflow) *checker {
	return &checker{w: w, state: map[string]int{}, errs: map[string][]Error{}}
}

const (
	stateChecking = 1
	stateValid    = 2
	stateInvalid  = 3
)

// add records a problem of node id.
func (ck *checker) add(id string, e Error) {
	ck.errs[id] = append(ck.errs[id], e)
	ck.state[id] = stateInvalid
}

// check validates node id and, through its links, every node it depends
// on; it reports whether all of them are valid.
func (ck *checker) check(id string) bool {
	switch ck.state[id] {
	case stateChecking:
		return false // a cycle; reported by the link that closes it
	case stateValid:
		return true
	case stateInvalid:
		return false
	}
	ck.state[id] = stateChecking
	n := ck.w.nodes[id]
	ok := true
	for _, in := range n.class.inputs {
		raw, present := n.inputs[in.name]
		if !present {
			ck.add(id, inputError(errMissingInput, "Required input is missing", in.name, in.name, nil))
			ok = false
			continue
		}
		if !ck.checkInput(n, in, raw) {
			ok = false
		}
	}
	if ck.state[id] == stateInvalid {
		ok = false
	}
	if ok {
		ck.state[id] = stateValid
	} else {
		ck.state[id] = stateInvalid
	}
	return ok
}

// checkInput validates one given input of n.
func (ck *checker) checkInput(n *node, in input, raw json.RawMessage) bool {
	if l, isLink := parseLink(raw); isLink {
		return ck.checkLink(n, in, l)
	}
	if isLinkType(in.typ) {
		ck.add(n.id, inputError(errBadLink, "Bad linked input, must be a length-2 list of [node_id, slot_index]",
			in.name, in.name, map[string]any{"received_value": json.RawMessage(raw)}))
		return false
	}
	v, e := literal(in, raw)
	if e != nil {
		ck.add(n.id, *e)
		return false
	}
	n.vals[in.name] = v
	return true
}

// checkLink validates a link input: the source exists, has the slot, gives
// the type the input takes, and is itself valid.
func (ck *checker) checkLink(n *node, in input, l linkRef) bool {
	src, ok := ck.w.nodes[l.node]
	if !ok {
		ck.add(n.id, inputError(errBadLink, "Bad linked input, must be a length-2 list of [node_id, slot_index]",
			in.name, fmt.Sprintf("%s: node %s does not exist", in.name, l.node), map[string]any{"linked_node": []any{l.node, l.slot}}))
		return false
	}
	if l.slot < 0 || l.slot >= len(src.class.outputs) || src.class.outputs[l.slot] != in.typ {
		got := "nothing"
		if l.slot >= 0 && l.slot < len(src.class.outputs) {
			got = src.class.outputs[l.slot]
		}
		ck.add(n.id, inputError(errTypeMismatch, "Return type mismatch between linked nodes", in.name,
			fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", in.name, got, in.typ),
			map[string]any{"received_type": got, "linked_node": []any{l.node, l.slot}}))
		return false
	}
	if ck.state[l.node] == stateChecking {
		ck.add(n.id, inputError(errBadLink, "Bad linked input, must be a length-2 list of [node_id, slot_index]",
			in.name, fmt.Sprintf("%s: the link to node %s closes a cycle", in.name, l.node), nil))
		return false
	}
	n.links[in.name] = l
	return ck.check(l.node)
}

// parseLink reads [node_id, slot]: two elements, a string and an integer.
func parseLink(raw json.RawMessage) (linkRef, bool) {
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil || len(parts) != 2 {
		return linkRef{}, false
	}
	var id string
	var slot int
	if json.Unmarshal(parts[0], &id) != nil || json.Unmarshal(parts[1], &slot) != nil {
		return linkRef{}, false
	}
	return linkRef{node: id, slot: slot}, true
}

// seedInputs may take a list of seeds instead of one: each seed is one image.
var seedInputs = []string{"seed", "noise_seed"}

// literal converts a widget value as ComfyUI does (int(), float(), str())
// and checks it against the input's bounds or options.
func literal(in input, raw json.RawMessage) (any, *Error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		e := inputError(errInputType, "Failed to convert an input value to a "+in.typ+" value", in.name,
			fmt.Sprintf("%s, %s, %v", in.name, raw, err), nil)
		return nil, &e
	}
	if list, ok := v.([]any); ok && in.typ == typeInt && slices.Contains(seedInputs, in.name) {
		return seedList(in, list)
	}
	switch in.typ {
	case typeInt, typeFloat:
		return number(in, v)
	case typeString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return map[bool]string{true: "True", false: "False"}[x], nil
		}
	case typeCombo:
		s, ok := v.(string)
		if in.dynamic != "" && ok {
			return s, nil // checked by the translation, as ComfyUI's VALIDATE_INPUTS would
		}
		if !ok || !slices.Contains(in.options, s) {
			e := inputError(errNotInList, "Value not in list", in.name,
				fmt.Sprintf("%s: '%v' not in %s", in.name, v, pyList(in.options)), map[string]any{"received_value": v})
			return nil, &e
		}
		return s, nil
	}
	e := inputError(errInputType, "Failed to convert an input value to a "+in.typ+" value", in.name,
		fmt.Sprintf("%s, %s", in.name, raw), map[string]any{"received_value": v})
	return nil, &e
}

// number converts v to an INT (int64, truncated as Python's int() does) or
// a FLOAT and checks its bounds.
func number(in input, v any) (any, *Error) {
	var f float64
	var i int64
	var err error
	switch x := v.(type) {
	case json.Number:
		if i, err = x.Int64(); err != nil || in.typ == typeFloat {
			f, err = x.Float64()
		} else {
			f = float64(i)
		}
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
		if n, e := strconv.ParseInt(strings.TrimSpace(x), 10, 64); e == nil {
			i, f = n, float64(n)
		}
	default:
		err = fmt.Errorf("%T is not a number", v)
	}
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("%v is not a finite number", f)
	}
	if err != nil {
		e := inputError(errInputType, "Failed to convert an input value to a "+in.typ+" value", in.name,
			fmt.Sprintf("%s, %v, %v", in.name, v, err), map[string]any{"received_value": v})
		return nil, &e
	}
	if in.typ == typeInt && float64(i) != f {
		i = int64(math.Trunc(f)) // Python's int(20.7) is 20
	}
	if f < in.min {
		e := inputError(errTooSmall, fmt.Sprintf("Value %s smaller than min of %s", fmtNum(in, f), fmtNum(in, in.min)),
			in.name, in.name, map[string]any{"received_value": v})
		return nil, &e
	}
	if f > in.max {
		e := inputError(errTooBig, fmt.Sprintf("Value %s bigger than max of %s", fmtNum(in, f), fmtNum(in, in.max)),
			in.name, in.name, map[string]any{"received_value": v})
		return nil, &e
	}
	if in.typ == typeInt {
		return i, nil
	}
	return f, nil
}

// seedList checks a literal list of seeds.
func seedList(in input, list []any) (any, *Error) {
	if len(list) == 0 {
		e := customError(in.name, "an empty list of seeds")
		return nil, &e
	}
	seeds := make([]int64, len(list))
	for k, v := range list {
		n, e := number(in, v)
		if e != nil {
			return nil, e
		}
		seeds[k] = n.(int64)
	}
	return seeds, nil
}

// fmtNum prints a number as Python would print the input's type.
func fmtNum(in input, v float64) string {
	if in.typ == typeInt && v == math.Trunc(v) && math.Abs(v) < 1<<63 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// Typed accessors of checked values.

func (n *node) int(name string) int64 {
	v, _ := n.vals[name].(int64)
	return v
}

func (n *node) float(name string) float64 {
	v, _ := n.vals[name].(float64)
	return v
}

func (n *node) str(name string) string {
	v, _ := n.vals[name].(string)
	return v
}
