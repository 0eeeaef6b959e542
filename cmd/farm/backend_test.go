package main

import (
	"slices"
	"testing"
)

func TestBackendFlags_Parse(t *testing.T) {
	for _, tc := range []struct {
		name, choice, device string
		want                 string
		wantDevice           int
		problems             []string
	}{
		{"defaults", "", "", "auto", 0, nil},
		{"auto", "auto", "0", "auto", 0, nil},
		{"cuda on device 3", "CUDA", "3", "cuda", 3, nil},
		{"cpu", "cpu", "0", "cpu", 0, nil},
		{"unknown backend", "gpu", "0", "gpu", 0, []string{`--backend "gpu": want auto, cpu or cuda`}},
		{"device not a number", "auto", "first", "auto", 0, []string{`--device "first": want a GPU number, 0 or more`}},
		{"negative device", "cuda", "-1", "cuda", -1, []string{`--device "-1": want a GPU number, 0 or more`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := backendFlags{choice: tc.choice, device: tc.device}
			choice, device, problems := f.parse()
			if !slices.Equal(problems, tc.problems) {
				t.Fatalf("problems = %q; want %q", problems, tc.problems)
			}
			if len(problems) == 0 && (choice != tc.want || device != tc.wantDevice) {
				t.Errorf("parse = %q, %d; want %q, %d", choice, device, tc.want, tc.wantDevice)
			}
		})
	}
}

func TestBackendFlags_Fill(t *testing.T) {
	two := 2
	for _, tc := range []struct {
		name                string
		flags               backendFlags
		choice              string
		device              *int
		wantChoice, wantDev string
	}{
		{"config fills the unset", backendFlags{}, "cuda", &two, "cuda", "2"},
		{"flags win", backendFlags{choice: "cpu", device: "1"}, "cuda", &two, "cpu", "1"},
		{"nothing in the config", backendFlags{}, "", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.flags
			f.fill(tc.choice, tc.device)
			if f.choice != tc.wantChoice || f.device != tc.wantDev {
				t.Errorf("after fill: %q, %q; want %q, %q", f.choice, f.device, tc.wantChoice, tc.wantDev)
			}
		})
	}
}
