package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// envScreenshots names a folder (relative to the repository root) that the
// dashboard test also writes its screenshots to: docs/screenshots keeps the
// committed ones current.
const envScreenshots = "LATENTFARM_SCREENSHOTS"

// TestDashboard_LoginSubmitWatchCancel drives the dashboard in headless
// Chromium against a real farm: a wrong token is refused, the right one logs
// in; a batch submitted from the form shows its frames in the gallery as
// they land (through the event stream: the page is never reloaded); an
// animation plays; a waiting job says why and is cancelled from its page;
// a running one shows what renders; the nodes page shows the busy nodes;
// the job list shows it all; logging out ends the session.
func TestDashboard_LoginSubmitWatchCancel(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not on PATH: the dashboard test drives it headless (scripts/deps.sh installs it)")
	}
	f := newFarm(t)
	c := f.startCoordinator(t)
	const delay = 300 * time.Millisecond // a task of 4 frames takes 1.2 s: the page sees the job run
	for _, id := range []string{"n1", "n2"} {
		o := f.nodeOptions(t, id, 8, delay)
		o.PricePerHour = 2.5 // so that jobs have a cost to show
		f.startNode(t, o)
	}
	b := startBrowser(t, chromium)
	ctx := context.Background()

	// 1. Login: the page asks for the token; a wrong one is refused.
	b.do(chromedp.Navigate(c.c.URL() + "/"))
	b.wait(`!document.getElementById('login').hidden`)
	if s := evalJS[int](b, `fetch('/v1/jobs').then(r => r.status)`); s != 401 {
		t.Fatalf("GET /v1/jobs before login: %d, want 401", s)
	}
	b.do(chromedp.SendKeys(chromedp.ID("login-token"), "not-the-token"), chromedp.Click(chromedp.CSS("#login-form button")))
	b.wait(`document.getElementById('login-error').textContent.includes('wrong token')`)
	b.shot("login")
	if s := evalJS[int](b, `fetch('/v1/jobs').then(r => r.status)`); s != 401 {
		t.Fatalf("GET /v1/jobs after a wrong token: %d, want 401", s)
	}
	b.do(chromedp.Clear(chromedp.ID("login-token")), chromedp.SendKeys(chromedp.ID("login-token"), f.token),
		chromedp.Click(chromedp.CSS("#login-form button")))
	b.wait(`!document.getElementById('top').hidden && document.getElementById('jobs') !== null`)
	if leak := evalJS[bool](b, fmt.Sprintf(`location.href.includes(%q) || document.cookie.includes(%q)`, f.token, "session")); leak {
		t.Fatal("the token or the session cookie is visible to the page")
	}

	// 2. Submit a batch from the form; the samplers are the engine's.
	b.do(chromedp.Click(chromedp.CSS(`nav a[data-page="submit"]`)))
	b.wait(`document.querySelector('#submit-form [name=sampler]') !== null`)
	if got := evalJS[[]string](b, `[...document.querySelector('[name=sampler]').options].map(o => o.value)`); !slices.Equal(got, scheduler.Names()) {
		t.Errorf("sampler choices %v, want %v", got, scheduler.Names())
	}
	form := func(name, value string) chromedp.Action[chromedp.Void] {
		return chromedp.SetValue(chromedp.CSS(`#submit-form [name=`+name+`]`), value)
	}
	b.do(form("prompts", "a red cube\na blue ball"), form("negative_prompt", "blurry"), form("model", "tiny"),
		form("name", "from the form"), form("images_per_prompt", "4"), form("seeds", "100"), form("steps", "4"),
		form("cfg_scale", "3"), form("sampler", scheduler.NameDDIM), form("width", "16"), form("height", "16"))
	b.shot("submit")
	b.do(chromedp.Click(chromedp.ID("submit")))
	b.wait(`location.hash.startsWith('#/jobs/') && document.querySelector('h1 .badge') !== null`)
	id := strings.TrimPrefix(evalJS[string](b, `location.hash`), "#/jobs/")
	if first := evalJS[string](b, `document.querySelector('h1 .badge').textContent`); first == wire.JobDone {
		t.Fatalf("job %s was done when its page opened: the test cannot see frames arrive", id)
	}
	b.waitFrames(8)
	b.wait(`document.querySelector('h1 .badge')?.textContent === 'done' && document.querySelector('.stats dd')?.textContent === '8 / 8'`)
	// The manifest, read once the job is done, names each frame's seed.
	b.wait(`[...document.querySelectorAll('#gallery figcaption')].every(c => c.textContent.includes('seed 10'))`)
	b.do(chromedp.Click(chromedp.CSS("details summary")))
	b.shot("job")
	st, err := c.cli.Job(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Spec; st.State != wire.JobDone || s.Name != "from the form" || !slices.Equal(s.Prompts, []string{"a red cube", "a blue ball"}) ||
		s.NegativePrompt != "blurry" || s.ImagesPerPrompt != 4 || s.Seeds.At(0) != 100 || s.Steps != 4 || s.CFG() != 3 ||
		s.Sampler != scheduler.NameDDIM || s.Width != 16 || s.Height != 16 {
		t.Errorf("job %s: state %s, spec %+v is not what the form said", id, st.State, s)
	}

	// 3. An animation plays on its page.
	anim, err := c.cli.Submit(ctx, wire.JobSpec{Kind: wire.KindAnimation, Name: "cube to ball", Model: "tiny",
		Width: 16, Height: 16, Steps: 4, Frames: 8, FPS: 4, Keyframes: []wire.Keyframe{
			{Frame: 0, Prompt: "a red cube", Seed: 1}, {Frame: 7, Prompt: "a blue ball", Seed: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	b.open("#/jobs/" + anim.ID)
	b.waitFrames(8)
	b.wait(`(p => p && (p.tagName === 'IMG' ? p.complete && p.naturalWidth > 0 : p.readyState >= 2))(document.getElementById('player'))`)
	b.shot("animation")

	// 4. Two slow jobs: the second waits for the first, and is cancelled.
	slow, err := c.cli.Submit(ctx, batch("slow", []string{"a harbour", "a lighthouse"}, 200, 4))
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := c.cli.Submit(ctx, batch("doomed", []string{"a storm"}, 40, 4))
	if err != nil {
		t.Fatal(err)
	}
	b.open("#/jobs/" + doomed.ID)
	b.wait(`!document.getElementById('waiting').hidden && document.getElementById('cancel') !== null`)
	b.shot("waiting")
	b.do(chromedp.Click(chromedp.ID("cancel")))
	b.wait(`document.querySelector('h1 .badge')?.textContent === 'cancelled' && document.getElementById('cancel') === null`)
	if st, err := c.cli.Job(ctx, doomed.ID, client.TasksNone); err != nil || st.State != wire.JobCancelled {
		t.Fatalf("job %s after cancel in the page: %s, %v", doomed.ID, st.State, err)
	}

	// 5. The slow job renders: its page shows the nodes at work and its
	// first frames; the nodes page shows them busy with it.
	b.open("#/jobs/" + slow.ID)
	b.wait(`document.querySelector('h1 .badge')?.textContent === 'running' && !document.getElementById('rendering').hidden &&
		[...document.querySelectorAll('#gallery img')].some(i => i.naturalWidth > 0)`)
	b.shot("running")
	b.do(chromedp.Click(chromedp.CSS(`nav a[data-page="nodes"]`)))
	b.wait(fmt.Sprintf(`document.querySelectorAll('#nodes tr[data-node]').length === 2 &&
		[...document.querySelectorAll('#nodes tr[data-node]')].some(r => r.textContent.includes(%q))`, slow.ID))
	b.shot("nodes")

	// 6. The job list: done, cancelled and running jobs with their numbers.
	b.do(chromedp.Click(chromedp.CSS(`nav a[data-page="jobs"]`)))
	row := func(job string) string { return fmt.Sprintf(`document.querySelector('#jobs tr[data-job=%q]')`, job) }
	b.wait(fmt.Sprintf(`(r => r && r.dataset.state === 'done' && r.textContent.includes('8 / 8') && r.textContent.includes(' USD'))(%s)`, row(id)))
	b.wait(fmt.Sprintf(`(r => r && r.dataset.state === 'cancelled')(%s)`, row(doomed.ID)))
	b.wait(fmt.Sprintf(`(r => r && r.dataset.state === 'running' && r.textContent.includes('frames/s'))(%s)`, row(slow.ID)))
	b.shot("jobs")

	// 7. Logging out ends the session.
	b.do(chromedp.Click(chromedp.ID("logout")))
	b.wait(`!document.getElementById('login').hidden`)
	if s := evalJS[int](b, `fetch('/v1/jobs').then(r => r.status)`); s != 401 {
		t.Errorf("GET /v1/jobs after logout: %d, want 401", s)
	}
	b.checkConsole()
}

// browser is one headless Chromium tab and where its screenshots go.
type browser struct {
	t     *testing.T
	ctx   context.Context
	dirs  []string
	mu    sync.Mutex
	fails []string // uncaught exceptions and refused loads of the page
}

// startBrowser starts Chromium with a 1280x800 window. It answers every
// confirm() with OK and records the page's uncaught exceptions and what its
// Content-Security-Policy refused.
func startBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.fails = append(b.fails, m.String())
				b.mu.Unlock()
			}
		}
	}()
	b.dirs = append(b.dirs, screenshotDir(t))
	if dir := os.Getenv(envScreenshots); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(repoRoot(t), dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b.dirs = append(b.dirs, dir)
	}
	return b
}

// screenshotDir is a new temporary folder for this run's screenshots, kept
// when the test fails.
func screenshotDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "latentfarm-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screenshots in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// repoRoot is the folder of go.mod above the working directory.
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// do runs actions, failing the test (with a screenshot) on an error.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("browser: %v", err)
	}
}

// evalJS evaluates expression in the page (awaiting a promise) and returns
// its value.
func evalJS[T any](b *browser, expression string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate %s: %v", expression, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds.
func (b *browser) wait(condition string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](condition,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second)))
	if err != nil {
		b.fail("waiting for %s: %v", condition, err)
	}
}

// waitFrames waits until the gallery holds n images that loaded.
func (b *browser) waitFrames(n int) {
	b.t.Helper()
	b.wait(fmt.Sprintf(`(imgs => imgs.length === %d && imgs.every(i => i.complete && i.naturalWidth > 0))(
		[...document.querySelectorAll('#gallery img')])`, n))
}

// open shows the page of a #/ route without reloading the app, and waits
// until the old page's elements are gone, so that no later wait sees them.
func (b *browser) open(route string) {
	b.t.Helper()
	evalJS[chromedp.Void](b, fmt.Sprintf(`for (const el of document.getElementById('main').children) el.dataset.stale = 'yes';
		location.hash = %q`, route))
	b.wait(fmt.Sprintf(`location.hash === %q && document.querySelector('#main > [data-stale]') === null`, route))
}

// shot saves the viewport as name.png in every screenshot folder.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	// Let bars and fades reach their place first.
	png, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		time.Sleep(400 * time.Millisecond)
		return chromedp.CaptureScreenshot()(ctx, t)
	})
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, dir := range b.dirs {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// fail ends the test with a screenshot of the page as it is.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		_ = os.WriteFile(filepath.Join(b.dirs[0], "failure.png"), png, 0o644)
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
		b.t.Logf("page text:\n%s", text)
	}
	b.checkConsole()
	b.t.Fatalf(format, args...)
}

// checkConsole fails the test for every uncaught exception of the page and
// everything its policy refused.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.fails {
		b.t.Errorf("page: %s", m)
	}
	b.fails = nil
}
