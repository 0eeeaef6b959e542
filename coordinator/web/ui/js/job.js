// One job: its numbers, why it waits, what is rendering now, a gallery that
// grows as frames land (the /events stream), the animation player, the
// failures and the spec.

import {api, cancelJob} from './api.js';
import {ago, badge, bar, bytes, clock, cost, duration, finished, h, rate, replace, timing} from './dom.js';

// galleryMax bounds the frames shown; the rest are in the manifest.
const galleryMax = 500;

// refreshEvery bounds how often the job is re-read while events arrive; a
// job of many tasks waits a millisecond more per task, up to 10 s more,
// since each re-read lists its unfinished ones (at most 1,000 queued).
const refreshEvery = 1000;

export function mount(main, id) {
  const path = '/v1/jobs/' + encodeURIComponent(id);
  const el = {
    title: h('h1'), actions: h('div', {class: 'actions'}), stats: h('dl', {class: 'stats'}), bar: h('div'),
    error: h('p', {class: 'error', role: 'alert'}), live: h('span', {class: 'muted live'}),
    waiting: h('section', {class: 'card waiting', id: 'waiting', hidden: true}),
    rendering: h('section', {class: 'card', id: 'rendering', hidden: true}),
    player: h('section', {class: 'card', id: 'animation', hidden: true}),
    gallery: h('div', {class: 'gallery', id: 'gallery'}), galleryNote: h('p', {class: 'muted'}),
    failures: h('section', {class: 'card', id: 'failures', hidden: true}),
    spec: h('pre', {class: 'spec'}),
  };
  replace(main,
    h('div', {class: 'page-head'}, h('div', {}, h('a', {href: '#/jobs', class: 'muted'}, '← Jobs'), el.title), el.actions),
    el.error, el.bar, el.stats, el.waiting, el.rendering, el.player,
    h('section', {class: 'card'}, h('h2', {}, 'Frames ', el.live), el.gallery, el.galleryNote),
    el.failures,
    h('details', {class: 'card'}, h('summary', {}, 'Spec'), el.spec));

  const assembleTask = id + '-assemble'; // wire.AssembleTaskID
  let job = null; // the latest JobStatus
  let manifest = null;
  let frames = new Map(); // frame index -> the manifest's entry
  let stopped = false;
  const shown = new Map(); // frame index -> figure
  const rendering = new Map(); // task id -> latest progress

  const drawHead = () => {
    if (!job) return;
    const t = timing(job);
    replace(el.title, job.name || job.id, ' ', badge(job.state));
    replace(el.bar, bar(job.frames_done, job.frames_failed, job.frames_total));
    const stat = (k, ...v) => h('div', {}, h('dt', {}, k), h('dd', {}, ...v));
    replace(el.stats,
      stat('Frames', job.frames_done + ' / ' + job.frames_total, job.frames_failed ? ' · ' + job.frames_failed + ' failed' : ''),
      stat('Rate', rate(t.rate)),
      stat('ETA', duration(t.eta)),
      stat(finished(job.state) ? 'Took' : 'Elapsed', duration(t.elapsed)),
      stat('GPU time', duration(job.gpu_seconds)),
      stat('Cost', cost(job.cost)),
      stat('Tasks', job.tasks_done + ' / ' + job.tasks_total + ' done',
        job.tasks_running ? ' · ' + job.tasks_running + ' running' : '',
        job.tasks_waiting ? ' · ' + job.tasks_waiting + ' waiting' : '',
        job.tasks_failed ? ' · ' + job.tasks_failed + ' failed' : ''),
      stat('Model', job.model),
      stat('Priority', job.priority),
      stat('Class', job.class + ' · needs ' + bytes(job.vram_bytes)),
      stat('Submitted', ago(job.created_at)),
      stat('Job id', h('code', {}, job.id)));
    const cancel = h('button', {class: 'danger', type: 'button', id: 'cancel', onclick: async () => {
      try {
        const st = await cancelJob(job);
        if (st) update(st);
      } catch (e) {
        el.error.textContent = 'Cancel failed: ' + e.message;
      }
    }}, 'Cancel job');
    replace(el.actions,
      job.manifest_key ? h('a', {class: 'button quiet', href: path + '/manifest', target: '_blank'}, 'Manifest') : null,
      finished(job.state) ? null : cancel);
  };

  const update = (st) => {
    job = {...job, ...st};
    drawHead();
  };

  const addFrame = (i) => {
    if (shown.has(i) || i >= galleryMax) return;
    const src = path + '/frames/' + i;
    const img = h('img', {src, alt: 'frame ' + i, loading: 'lazy', decoding: 'async'});
    img.addEventListener('load', () => img.classList.toggle('pixelated', img.naturalWidth < 128));
    img.addEventListener('error', () => img.closest('figure').classList.add('broken'));
    const fig = h('figure', {dataset: {index: i}}, h('a', {href: src, target: '_blank'}, img), h('figcaption', {}, '#' + i));
    describe(fig, i);
    const next = [...shown.keys()].filter((k) => k > i).sort((a, b) => a - b)[0];
    el.gallery.insertBefore(fig, next === undefined ? null : shown.get(next));
    shown.set(i, fig);
    drawGalleryNote();
  };

  const describe = (fig, i) => {
    const f = frames.get(i);
    if (!f) return;
    fig.title = f.prompt + '\nseed ' + f.seed + ' · ' + f.node + ' · ' + duration(f.render_ms / 1000);
    fig.querySelector('figcaption').textContent = '#' + i + ' · seed ' + f.seed;
  };

  const drawGalleryNote = () => {
    const total = job ? job.frames_total : 0;
    el.galleryNote.textContent = shown.size === 0 ? (job && finished(job.state) ? 'No frames were rendered.' : 'No frames yet.') :
      total > galleryMax ? 'Showing the first ' + galleryMax + ' of ' + total + ' frames; every frame is in the manifest.' : '';
  };

  // drawWaiting lists the job's reasons, then those of single tasks
  // (a retry's backoff, an assembly waiting for frames) with their counts.
  const drawWaiting = (detail) => {
    const lines = detail.waiting || [];
    const tasks = new Map(); // reason -> tasks
    for (const t of detail.tasks || []) {
      if (t.why && !lines.includes(t.why)) tasks.set(t.why, (tasks.get(t.why) || 0) + 1);
    }
    el.waiting.hidden = finished(detail.state) || lines.length + tasks.size === 0;
    replace(el.waiting, h('h2', {}, 'Why it waits'), h('ul', {},
      lines.map((l) => h('li', {}, l)),
      [...tasks].map(([why, n]) => h('li', {}, (n > 1 ? n + ' tasks: ' : 'one task: ') + why))));
  };

  const drawRendering = () => {
    el.rendering.hidden = rendering.size === 0;
    replace(el.rendering, h('h2', {}, 'Rendering now'), h('ul', {class: 'rendering'}, [...rendering.values()].map((p) =>
      h('li', {}, h('code', {}, p.node_id), ' frame ' + p.frame + ' · ',
        p.stage === 'step' ? 'step ' + p.step + ' / ' + p.steps : p.stage,
        h('span', {class: 'sub'}, ' · task ' + p.task_id.replace(id + '-', ''))))));
  };

  const drawFailures = (detail) => {
    const bad = (detail.tasks || []).filter((t) => t.error || t.state === 'failed');
    el.failures.hidden = bad.length === 0 && !detail.error;
    replace(el.failures, h('h2', {}, 'Failures'),
      detail.error ? h('p', {class: 'error'}, detail.error) : null,
      bad.length ? h('table', {class: 'list'},
        h('thead', {}, h('tr', {}, ['Task', 'Frames', 'State', 'Attempt', 'Node', 'Reason'].map((c) => h('th', {}, c)))),
        h('tbody', {}, bad.map((t) => h('tr', {},
          h('td', {}, h('code', {}, t.id)), h('td', {}, t.frames[0] + '–' + t.frames[1]), h('td', {}, badge(t.state)),
          h('td', {class: 'num'}, t.attempt), h('td', {}, t.node || '—'),
          h('td', {}, t.error ? h('code', {}, t.error.code) : null, ' ', t.error ? t.error.message : '', t.why ? ' (' + t.why + ')' : ''))))) : null);
  };

  const drawPlayer = () => {
    const outputs = (manifest && manifest.outputs) || [];
    el.player.hidden = outputs.length === 0 && !(manifest && manifest.notes);
    const url = (name) => path + '/outputs/' + encodeURIComponent(name);
    const mp4 = outputs.find((o) => o.name.endsWith('.mp4'));
    const gif = outputs.find((o) => o.name.endsWith('.gif'));
    let player = null;
    if (mp4 && document.createElement('video').canPlayType('video/mp4')) {
      player = h('video', {id: 'player', src: url(mp4.name), controls: true, loop: true, autoplay: true, playsinline: true});
      player.muted = true;
    } else if (gif) {
      player = h('img', {id: 'player', src: url(gif.name), alt: 'the animation'});
      player.addEventListener('load', () => player.classList.toggle('pixelated', player.naturalWidth < 128));
    }
    replace(el.player, h('h2', {}, 'Animation'), player,
      h('p', {}, outputs.map((o) => [h('a', {href: url(o.name), download: o.name}, o.name), ' (' + bytes(o.bytes) + ') '])),
      (manifest && manifest.notes || []).map((n) => h('p', {class: 'muted'}, n)));
  };

  // refresh re-reads the job with every task: the frames of done tasks,
  // failures and why the rest wait; a finished job's manifest once. Calls
  // while one runs (and for refreshEvery after it) fold into one more.
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (stopped) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const detail = await api(path + '?tasks=all');
      update(detail);
      for (const t of detail.tasks || []) {
        if (t.state !== 'running') rendering.delete(t.id); // its last progress event may be lost
        if (t.state !== 'done' || t.id === assembleTask) continue; // it has no frames
        for (let i = t.frames[0]; i <= t.frames[1]; i++) addFrame(i);
      }
      drawRendering();
      drawWaiting(detail);
      drawFailures(detail);
      el.spec.textContent = JSON.stringify(detail.spec, null, 2);
      if (detail.manifest_key && !manifest) {
        // A big job's manifest is hundreds of MB: ask for the first entries
        // of each list (in the order tasks ended: enough for the gallery).
        manifest = await api(path + '/manifest?limit=' + 4 * galleryMax);
        frames = new Map(manifest.frames.map((f) => [f.index, f]));
        for (const f of manifest.frames) addFrame(f.index);
        for (const [i, fig] of shown) describe(fig, i);
        drawPlayer();
      }
      el.error.textContent = '';
    } catch (e) {
      el.error.textContent = (e.status === 404 ? 'No such job: ' : 'Cannot read the job: ') + e.message;
    }
    drawGalleryNote();
    await new Promise((r) => setTimeout(r, refreshEvery + (job ? Math.min(job.tasks_total, 10000) : 0)));
    busy = false;
    if (again) {
      again = false;
      refresh();
    }
  };

  const events = new EventSource(path + '/events');
  const onEvent = (type, fn) => events.addEventListener(type, (e) => {
    const ev = JSON.parse(e.data);
    clock.sync(Date.parse(ev.time));
    fn(ev);
  });
  onEvent('status', (ev) => {
    const changed = !job || ev.job.frames_done !== job.frames_done || ev.job.state !== job.state;
    update(ev.job);
    if (changed) refresh();
  });
  onEvent('progress', (ev) => {
    const p = ev.progress;
    if (p.stage === 'frame') addFrame(p.frame);
    if (p.stage === 'done') rendering.delete(p.task_id);
    else rendering.set(p.task_id, p);
    drawRendering();
  });
  onEvent('end', (ev) => {
    events.close();
    el.live.textContent = '';
    rendering.clear();
    drawRendering();
    update(ev.job);
    refresh();
  });
  events.addEventListener('open', () => (el.live.textContent = '· live'));
  events.addEventListener('error', () => {
    if (events.readyState === EventSource.CLOSED) el.live.textContent = '· live updates stopped: reload to retry';
  });

  refresh();
  const tick = setInterval(drawHead, 1000); // elapsed and ETA move between events
  return () => {
    stopped = true;
    events.close();
    clearInterval(tick);
  };
}
