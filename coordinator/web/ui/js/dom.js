// DOM and formatting helpers shared by the pages. Every value that comes
// from the API reaches the page as text, never as HTML.

// h builds an element: h('a', {href: '#/jobs', class: 'x'}, 'text', child).
// Attributes named on* add listeners; null, undefined and false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

// replace sets el's children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === '') continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// clock is the coordinator's time, as its responses and events tell it,
// so that ages and ETAs stay right when the browser's clock is off.
export const clock = {
  offset: 0,
  now() { return Date.now() + this.offset; },
  sync(serverMillis) {
    if (Number.isFinite(serverMillis)) this.offset = serverMillis - Date.now();
  },
};

export function finished(state) {
  return state === 'done' || state === 'failed' || state === 'cancelled';
}

// timing is a job's elapsed seconds, rate in frames per second since it was
// submitted, and seconds left at that rate (null when unknown or finished).
export function timing(job) {
  const start = Date.parse(job.created_at);
  const end = job.finished_at ? Date.parse(job.finished_at) : clock.now();
  const elapsed = Math.max((end - start) / 1000, 0);
  const rate = elapsed > 0 ? job.frames_done / elapsed : 0;
  const left = job.frames_total - job.frames_done - job.frames_failed;
  const eta = finished(job.state) || rate === 0 ? null : left / rate;
  return {elapsed, rate, eta};
}

export function badge(state) {
  return h('span', {class: 'badge state-' + state}, state.replace('_', ' '));
}

// bar is a progress bar of done and failed out of total.
export function bar(done, failed, total) {
  const pct = (n) => (total > 0 ? (100 * n) / total : 0) + '%';
  const d = h('span', {class: 'done'});
  const f = h('span', {class: 'failed'});
  d.style.width = pct(done);
  f.style.width = pct(failed);
  return h('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done}, d, f);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 10) return seconds.toFixed(1) + ' s';
  const s = Math.round(seconds);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

export function ago(time) {
  const t = Date.parse(time);
  if (!Number.isFinite(t)) return '—';
  return duration(Math.max((clock.now() - t) / 1000, 0)).replace(/\.\d /, ' ') + ' ago';
}

export function rate(perSecond) {
  if (!perSecond) return '—';
  return (perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toPrecision(2)) + ' frames/s';
}

export function bytes(n) {
  if (!n) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 || n >= 100 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
}

export function cost(c) {
  return c && c.currency ? c.amount.toFixed(4) + ' ' + c.currency : '—';
}
