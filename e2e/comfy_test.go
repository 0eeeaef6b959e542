package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/localrender"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// comfyClient runs the npm ComfyUI SDK client (tools/comfy-client).
const comfyClient = "../scripts/comfy-client-test.sh"

// comfyModel is the sd-tiny fixture's diffusers folder, by its name in the
// nodes' models folder.
const comfyModel = "model"

// comfyRun is what tools/comfy-client/client.js prints when it succeeds.
type comfyRun struct {
	PromptID     string   `json:"prompt_id"`
	Files        []string `json:"files"`
	HistoryFiles []string `json:"history_files"`
	Executing    int      `json:"executing"`
	Executed     int      `json:"executed"`
	Status       int      `json:"status"`
	Progress     [][2]int `json:"progress"`
}

// startEngineFarm starts a farm whose engine nodes render the sd-tiny
// fixture, and returns it with its coordinator's URL.
func startEngineFarm(t *testing.T, nodes int) (*farm, string) {
	t.Helper()
	fixtures := testfixtures.Dir(t)
	f := newFarm(t)
	c := f.startCoordinator(t)
	for i := range nodes {
		o := f.nodeOptions(t, fmt.Sprintf("engine%d", i), 8, 0)
		o.RendererName, o.ModelsDir = node.RendererEngine, fixtures
		f.startNode(t, o)
	}
	return f, c.c.URL()
}

// TestComfy_SDKClientGetsWhatFarmRenderGives points ComfyUI's npm client
// SDK at the farm with the farm's token: it queues ComfyUI's standard
// text-to-image workflow with a batch of 2 (split over two engine nodes),
// follows it over the websocket and downloads the images through /view.
// Each image must have exactly the pixels `farm render` gives for the same
// model, prompt, seed, steps, cfg, sampler, schedule and size.
func TestComfy_SDKClientGetsWhatFarmRenderGives(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("comfy: node (Node.js 20) is not on PATH; make test installs it (scripts/deps.sh)")
	}
	f, url := startEngineFarm(t, 2)
	out := t.TempDir()
	args := []string{"--url", url, "--out", out, "--ckpt", comfyModel, "--prompt", "a red cube", "--negative", "blurry",
		"--seed", "7", "--steps", "3", "--cfg", "5", "--sampler", "euler_ancestral", "--scheduler", "karras",
		"--width", "24", "--height", "16", "--batch", "2", "--timeout", "120000"}
	stdout, stderr, err := runComfyClient(f.token, args)
	if err != nil {
		t.Fatalf("comfy client: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
	}
	var run comfyRun
	if err := json.Unmarshal(stdout, &run); err != nil {
		t.Fatalf("comfy client summary %q: %v", stdout, err)
	}
	t.Logf("comfy client: %s", bytes.TrimSpace(stdout))

	if len(run.Files) != 2 || strings.Join(run.HistoryFiles, ",") != strings.Join(run.Files, ",") {
		t.Fatalf("downloaded %v, history lists %v: want the same 2 images", run.Files, run.HistoryFiles)
	}
	if run.Executing == 0 || run.Executed != 1 || run.Status == 0 {
		t.Errorf("websocket messages: %d executing, %d executed, %d status; want some, 1 and some", run.Executing, run.Executed, run.Status)
	}
	if n := len(run.Progress); n == 0 || run.Progress[n-1] != [2]int{6, 6} {
		t.Errorf("progress %v: want it to end at 6 of 6 (3 steps x 2 images)", run.Progress)
	}

	want := renderLocally(t, wire.JobSpec{Model: comfyModel, Prompts: []string{"a red cube"}, NegativePrompt: "blurry",
		Seeds: wire.SeedRange(7, 2), Width: 24, Height: 16, Steps: 3, CFGScale: wire.GuidanceScale(5),
		Sampler: wire.SamplerEulerA, Schedule: wire.ScheduleKarras})
	for _, name := range run.Files {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		comparePixels(t, name, got, want[frameOf(t, name)])
	}

	// The same client with a wrong token is turned away.
	if _, stderr, err := runComfyClient("wrong", args); err == nil || !strings.Contains(string(stderr), "401") {
		t.Errorf("comfy client with a wrong token: %v, %s; want a failure naming 401", err, stderr)
	}
}

// runComfyClient runs tools/comfy-client/client.js with the token and
// returns its stdout and stderr.
func runComfyClient(token string, args []string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{comfyClient}, args...)...)
	cmd.Env = append(os.Environ(), "COMFY_TOKEN="+token)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// renderLocally renders spec with localrender, as `farm render` does, and
// returns its frames by index.
func renderLocally(t *testing.T, spec wire.JobSpec) map[int][]byte {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "job.json"), data)
	m, err := localrender.Run(context.Background(), localrender.Options{Spec: filepath.Join(dir, "job.json"),
		Output: filepath.Join(dir, "out"), Models: testfixtures.Dir(t)})
	if err != nil {
		t.Fatalf("farm render: %v", err)
	}
	frames := map[int][]byte{}
	for _, fr := range m.Frames {
		b, err := os.ReadFile(filepath.Join(dir, "out", localrender.FrameFile(fr.Index)))
		if err != nil {
			t.Fatal(err)
		}
		frames[fr.Index] = b
	}
	return frames
}

var frameIndexRE = regexp.MustCompile(`_(\d+)_\.png$`)

// frameOf is the frame index in an output file name (<prefix>_<job>_<index>_.png).
func frameOf(t *testing.T, name string) int {
	t.Helper()
	m := frameIndexRE.FindStringSubmatch(name)
	if m == nil {
		t.Fatalf("output %q does not end in _<index>_.png", name)
	}
	i, _ := strconv.Atoi(m[1])
	return i
}

// comparePixels fails unless got and want are PNGs of the same pixels.
func comparePixels(t *testing.T, name string, got, want []byte) {
	t.Helper()
	if want == nil {
		t.Errorf("%s: farm render made no such frame", name)
		return
	}
	a, err := png.Decode(bytes.NewReader(got))
	if err != nil {
		t.Errorf("%s is not a PNG: %v", name, err)
		return
	}
	b, _ := png.Decode(bytes.NewReader(want))
	if a.Bounds() != b.Bounds() {
		t.Errorf("%s is %v, farm render's frame %v", name, a.Bounds(), b.Bounds())
		return
	}
	if d := maxLevelDiff(t, got, want); d != 0 || pixelDiff(t, got, want) == "pixels differ" {
		t.Errorf("%s differs from farm render's frame by up to %d levels", name, d)
	}
}

// comfyDo sends a request to the farm's ComfyUI API and decodes a JSON answer.
func comfyDo(t *testing.T, method, url, token string, body io.Reader, ctype string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if b, ok := out.(*[]byte); ok {
			*b = data
		} else if err := json.Unmarshal(data, out); err != nil && resp.StatusCode < 300 {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

// comfyPrompt queues a workflow and returns the status and the answer.
func comfyPrompt(t *testing.T, url, token, clientID string, workflow map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"prompt": workflow, "client_id": clientID})
	var out map[string]any
	code := comfyDo(t, http.MethodPost, url+"/prompt", token, bytes.NewReader(body), "application/json", &out)
	return code, out
}

// txt2img is ComfyUI's default text-to-image workflow in API format.
func txt2img(sampler string) map[string]any {
	return map[string]any{
		"3": comfyNode("KSampler", map[string]any{"seed": 1, "steps": 2, "cfg": 5.0, "sampler_name": sampler, "scheduler": "normal",
			"denoise": 1.0, "model": []any{"4", 0}, "positive": []any{"6", 0}, "negative": []any{"7", 0}, "latent_image": []any{"5", 0}}),
		"4": comfyNode("CheckpointLoaderSimple", map[string]any{"ckpt_name": comfyModel}),
		"5": comfyNode("EmptyLatentImage", map[string]any{"width": 16, "height": 16, "batch_size": 1}),
		"6": comfyNode("CLIPTextEncode", map[string]any{"text": "a cat", "clip": []any{"4", 1}}),
		"7": comfyNode("CLIPTextEncode", map[string]any{"text": "", "clip": []any{"4", 1}}),
		"8": comfyNode("VAEDecode", map[string]any{"samples": []any{"3", 0}, "vae": []any{"4", 2}}),
		"9": comfyNode("SaveImage", map[string]any{"filename_prefix": "ComfyUI", "images": []any{"8", 0}}),
	}
}

func comfyNode(class string, inputs map[string]any) map[string]any {
	return map[string]any{"class_type": class, "inputs": inputs}
}

// TestComfy_RefusesWhatItCannotRun: a workflow with a node class the farm
// does not run, or a sampler it does not have, gets ComfyUI's 400 with
// node errors naming the node and the class; a wrong token is refused on
// /prompt and on the websocket, the right one (as ?token=) connects.
func TestComfy_RefusesWhatItCannotRun(t *testing.T) {
	f := newFarm(t)
	url := f.startCoordinator(t).c.URL()

	w := txt2img("euler")
	w["10"] = comfyNode("LoraLoader", map[string]any{"model": []any{"4", 0}, "clip": []any{"4", 1},
		"lora_name": "x.safetensors", "strength_model": 1.0, "strength_clip": 1.0})
	code, out := comfyPrompt(t, url, f.token, "c1", w)
	errBody, _ := out["error"].(map[string]any)
	nodeErr, _ := out["node_errors"].(map[string]any)["10"].(map[string]any)
	if code != http.StatusBadRequest || errBody["type"] != "invalid_prompt" ||
		!strings.Contains(fmt.Sprint(errBody["message"]), "LoraLoader") || nodeErr["class_type"] != "LoraLoader" {
		t.Errorf("an unsupported class: %d %s; want 400 invalid_prompt naming LoraLoader in node_errors[\"10\"]", code, jsonText(out))
	}

	code, out = comfyPrompt(t, url, f.token, "c1", txt2img("dpmpp_sde"))
	nodeErr, _ = out["node_errors"].(map[string]any)["3"].(map[string]any)
	if code != http.StatusBadRequest || nodeErr["class_type"] != "KSampler" ||
		!strings.Contains(jsonText(nodeErr["errors"]), `"type":"value_not_in_list"`) {
		t.Errorf("an unknown sampler: %d %s; want 400 value_not_in_list on KSampler node 3", code, jsonText(out))
	}

	// The farm's own refusal at submit (no node and no store has the
	// model) names the checkpoint loader.
	w = txt2img("euler")
	w["4"] = comfyNode("CheckpointLoaderSimple", map[string]any{"ckpt_name": "nowhere.safetensors"})
	code, out = comfyPrompt(t, url, f.token, "c1", w)
	nodeErr, _ = out["node_errors"].(map[string]any)["4"].(map[string]any)
	if code != http.StatusBadRequest || nodeErr["class_type"] != "CheckpointLoaderSimple" ||
		!strings.Contains(jsonText(nodeErr["errors"]), `ckpt_name - `) {
		t.Errorf("an unknown model: %d %s; want 400 naming ckpt_name of node 4", code, jsonText(out))
	}

	for _, token := range []string{"wrong", ""} {
		if code, _ := comfyPrompt(t, url, token, "c1", txt2img("euler")); code != http.StatusUnauthorized {
			t.Errorf("POST /prompt with token %q: %d, want 401", token, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(url, "http") + "/ws?clientId=c1&token="
	if conn, resp, err := websocket.Dial(ctx, ws+"wrong", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		if conn != nil {
			conn.CloseNow()
		}
		t.Errorf("/ws with a wrong token: %v, want a 401 refusal", err)
	}
	conn, _, err := websocket.Dial(ctx, ws+f.token, nil)
	if err != nil {
		t.Fatalf("/ws with the token: %v", err)
	}
	defer conn.CloseNow()
	_, data, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(data), `"type":"status"`) || !strings.Contains(string(data), `"sid":"c1"`) {
		t.Errorf("first websocket message %s (%v): want a status with sid c1", data, err)
	}
}

// TestComfy_ImageInputsMatchFarmRender queues img2img (LoadImage, VAEEncode,
// KSampler at denoise 0.5) and inpainting (LoadImageMask, VAEEncodeForInpaint)
// workflows over plain HTTP, with their images uploaded through
// /upload/image, and checks each output against `farm render` of the spec
// the workflow stands for.
func TestComfy_ImageInputsMatchFarmRender(t *testing.T) {
	f, url := startEngineFarm(t, 1)
	initPath := testfixtures.Path(t, "golden/img2img_init_image.png")
	maskPath := testfixtures.Path(t, "golden/inpaint_mask.png")
	initName, maskName := comfyUpload(t, url, f.token, initPath), comfyUpload(t, url, f.token, maskPath)
	sampler := func(latent string, denoise float64) map[string]any {
		return comfyNode("KSampler", map[string]any{"seed": 3, "steps": 4, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
			"denoise": denoise, "model": []any{"4", 0}, "positive": []any{"6", 0}, "negative": []any{"7", 0}, "latent_image": []any{latent, 0}})
	}

	img2img := txt2img("euler")
	delete(img2img, "5")
	img2img["3"] = sampler("11", 0.5)
	img2img["10"] = comfyNode("LoadImage", map[string]any{"image": initName})
	img2img["11"] = comfyNode("VAEEncode", map[string]any{"pixels": []any{"10", 0}, "vae": []any{"4", 2}})
	// ComfyUI runs 4 steps of a schedule of int(4/0.5) = 8: strength keeps 4 of 8.
	want := renderLocally(t, wire.JobSpec{Model: comfyModel, Prompts: []string{"a cat"}, Seeds: wire.SeedRange(3, 1),
		Steps: 8, CFGScale: wire.GuidanceScale(4), Sampler: wire.SamplerEuler, InitImage: initPath, Strength: 4.5 / 8})
	comparePixels(t, "img2img", comfyRender(t, url, f.token, img2img), want[0])

	inpaint := txt2img("euler")
	delete(inpaint, "5")
	inpaint["3"] = sampler("11", 1)
	inpaint["10"] = comfyNode("LoadImage", map[string]any{"image": initName})
	inpaint["12"] = comfyNode("LoadImageMask", map[string]any{"image": maskName, "channel": "red"})
	inpaint["11"] = comfyNode("VAEEncodeForInpaint", map[string]any{"pixels": []any{"10", 0}, "vae": []any{"4", 2},
		"mask": []any{"12", 0}, "grow_mask_by": 0})
	want = renderLocally(t, wire.JobSpec{Model: comfyModel, Prompts: []string{"a cat"}, Seeds: wire.SeedRange(3, 1),
		Steps: 4, CFGScale: wire.GuidanceScale(4), Sampler: wire.SamplerEuler, InitImage: initPath, Mask: maskPath, Strength: 1})
	comparePixels(t, "inpaint", comfyRender(t, url, f.token, inpaint), want[0])

	// What a client lists before it builds a workflow, and after.
	var info map[string]struct {
		Input struct{ Required map[string][]json.RawMessage } `json:"input"`
	}
	comfyDo(t, http.MethodGet, url+"/object_info/CheckpointLoaderSimple", f.token, nil, "", &info)
	var ckpts []string
	if in := info["CheckpointLoaderSimple"].Input.Required["ckpt_name"]; len(in) > 0 {
		_ = json.Unmarshal(in[0], &ckpts)
	}
	if !slices.Contains(ckpts, comfyModel) {
		t.Errorf("ckpt_name options %v, want the node's models", ckpts)
	}
	var stats struct {
		Devices []struct{ Name, Type string } `json:"devices"`
	}
	comfyDo(t, http.MethodGet, url+"/system_stats", f.token, nil, "", &stats)
	if len(stats.Devices) != 1 || !strings.HasPrefix(stats.Devices[0].Name, "engine0: ") || stats.Devices[0].Type != "cpu" {
		t.Errorf("system_stats devices %+v, want the one CPU node", stats.Devices)
	}
	var queue struct{ QueueRunning, QueuePending []json.RawMessage }
	var history map[string]json.RawMessage
	comfyDo(t, http.MethodGet, url+"/queue", f.token, nil, "", &queue)
	comfyDo(t, http.MethodGet, url+"/history?max_items=5", f.token, nil, "", &history)
	if len(queue.QueueRunning)+len(queue.QueuePending) != 0 || len(history) != 2 {
		t.Errorf("queue %+v and %d history entries, want an empty queue and 2 entries", queue, len(history))
	}
	var upload []byte
	if code := comfyDo(t, http.MethodGet, url+"/view?type=input&filename="+initName, f.token, nil, "", &upload); code != http.StatusOK {
		t.Errorf("GET /view of the upload: %d %s", code, upload)
	}
}

// TestComfy_InterruptStopsTheRunningPrompt follows a prompt over the
// websocket as a ComfyUI client does: it runs (listed in queue_running,
// executing messages), POST /interrupt cancels it, the client gets
// execution_interrupted and the history says it ended in error.
func TestComfy_InterruptStopsTheRunningPrompt(t *testing.T) {
	f := newFarm(t)
	url := f.startCoordinator(t).c.URL()
	f.startNode(t, f.nodeOptions(t, "slow0", 8, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws?clientId=c2",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + f.token}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	code, out := comfyPrompt(t, url, f.token, "c2", txt2img("euler"))
	id, _ := out["prompt_id"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("POST /prompt: %d %s", code, jsonText(out))
	}
	next := func(want string) map[string]any {
		t.Helper()
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			var m struct {
				Type string         `json:"type"`
				Data map[string]any `json:"data"`
			}
			if json.Unmarshal(data, &m) == nil && m.Type == want && m.Data["prompt_id"] == id {
				return m.Data
			}
		}
	}
	if d := next("executing"); d["node"] == nil {
		t.Errorf("executing %v, want a node", d)
	}
	var queue struct {
		QueueRunning [][]any `json:"queue_running"`
	}
	comfyDo(t, http.MethodGet, url+"/queue", f.token, nil, "", &queue)
	if len(queue.QueueRunning) != 1 || queue.QueueRunning[0][1] != id {
		t.Errorf("queue_running %v, want the prompt", queue.QueueRunning)
	}
	if code := comfyDo(t, http.MethodPost, url+"/interrupt", f.token, nil, "", nil); code != http.StatusOK {
		t.Fatalf("POST /interrupt: %d", code)
	}
	if d := next("execution_interrupted"); d["node_id"] != "3" || d["node_type"] != "KSampler" {
		t.Errorf("execution_interrupted %v, want the KSampler node 3", d)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var hist map[string]struct {
			Status struct {
				StatusStr string `json:"status_str"`
				Completed bool   `json:"completed"`
			} `json:"status"`
		}
		comfyDo(t, http.MethodGet, url+"/history/"+id, f.token, nil, "", &hist)
		if e, ok := hist[id]; ok {
			if e.Status.StatusStr != "error" || e.Status.Completed {
				t.Errorf("history status %+v, want an error, not completed", e.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the interrupted prompt never reached the history")
		}
	}
}

// comfyUpload uploads an image as ComfyUI clients do and returns its name.
func comfyUpload(t *testing.T, url, token, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile("image", filepath.Base(file))
	_, _ = part.Write(data)
	_ = mw.WriteField("overwrite", "true")
	_ = mw.Close()
	var out struct{ Name, Subfolder, Type string }
	if code := comfyDo(t, http.MethodPost, url+"/upload/image", token, &body, mw.FormDataContentType(), &out); code != http.StatusOK || out.Type != "input" {
		t.Fatalf("upload %s: %d %+v", file, code, out)
	}
	return out.Name
}

// comfyRender queues a workflow, waits for its history entry and downloads
// its one image.
func comfyRender(t *testing.T, url, token string, workflow map[string]any) []byte {
	t.Helper()
	code, out := comfyPrompt(t, url, token, "", workflow)
	id, _ := out["prompt_id"].(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("POST /prompt: %d %s", code, jsonText(out))
	}
	var entry struct {
		Status  struct{ Completed bool } `json:"status"`
		Outputs map[string]struct {
			Images []struct{ Filename, Subfolder, Type string } `json:"images"`
		} `json:"outputs"`
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var hist map[string]json.RawMessage
		comfyDo(t, http.MethodGet, url+"/history/"+id, token, nil, "", &hist)
		if hist[id] != nil && json.Unmarshal(hist[id], &entry) == nil && entry.Status.Completed {
			break
		}
		if time.Now().After(deadline) {
			var job []byte
			comfyDo(t, http.MethodGet, url+"/v1/jobs/"+id, token, nil, "", &job)
			t.Fatalf("prompt %s not completed after 90s: history %s; the job: %s", id, hist[id], job)
		}
	}
	images := entry.Outputs["9"].Images
	if len(images) != 1 {
		t.Fatalf("history of %s lists %+v, want 1 image of node 9", id, entry.Outputs)
	}
	var img []byte
	q := "/view?filename=" + images[0].Filename + "&type=" + images[0].Type + "&subfolder=" + images[0].Subfolder
	if code := comfyDo(t, http.MethodGet, url+q, token, nil, "", &img); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", q, code, img)
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(img)); err != nil {
		t.Fatalf("GET %s: not an image: %v", q, err)
	}
	return img
}
