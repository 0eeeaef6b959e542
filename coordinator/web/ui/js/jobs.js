// The job list: state, progress, rate, ETA, device time and cost of the
// newest jobs, polled.

import {api, cancelJob, poll} from './api.js';
import {ago, badge, bar, cost, duration, finished, h, rate, replace, timing} from './dom.js';

const columns = ['Job', 'State', 'Progress', 'Rate', 'ETA', 'GPU time', 'Cost', 'Submitted', ''];

export function mount(main) {
  const body = h('tbody');
  const error = h('p', {class: 'error', role: 'alert'});
  replace(main,
    h('div', {class: 'page-head'}, h('h1', {}, 'Jobs'), h('a', {class: 'button', href: '#/submit'}, 'New batch')),
    error,
    h('table', {class: 'list', id: 'jobs'}, h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))), body));

  let jobs = null;
  const draw = () => {
    if (jobs === null) return;
    replace(body, jobs.length ? jobs.map((j) => row(j, refresh)) :
      h('tr', {}, h('td', {colspan: columns.length, class: 'empty'}, 'No jobs yet: ', h('a', {href: '#/submit'}, 'submit a batch'), '.')));
  };
  const refresh = async () => {
    try {
      jobs = (await api('/v1/jobs?limit=100')).jobs;
      error.textContent = '';
    } catch (e) {
      error.textContent = 'Cannot list jobs: ' + e.message;
    }
    draw();
  };
  const stop = poll(2000, refresh);
  const tick = setInterval(draw, 1000); // ages and ETAs move between polls
  return () => {
    stop();
    clearInterval(tick);
  };
}

function row(j, refresh) {
  const t = timing(j);
  const link = h('a', {href: '#/jobs/' + encodeURIComponent(j.id)}, j.name || j.id);
  const cancel = finished(j.state) ? null : h('button', {class: 'danger small', type: 'button', onclick: async (e) => {
    e.target.disabled = true;
    try {
      await cancelJob(j);
    } catch (err) {
      alert('Cancel failed: ' + err.message);
    }
    refresh();
  }}, 'Cancel');
  return h('tr', {dataset: {job: j.id, state: j.state}},
    h('td', {}, link, h('div', {class: 'sub'}, j.name ? j.id + ' · ' : '', j.model)),
    h('td', {}, badge(j.state)),
    h('td', {class: 'progress'}, bar(j.frames_done, j.frames_failed, j.frames_total),
      h('span', {class: 'count'}, j.frames_done + ' / ' + j.frames_total),
      j.frames_failed ? h('span', {class: 'failed-count'}, j.frames_failed + ' failed') : null),
    h('td', {class: 'num'}, rate(t.rate)),
    h('td', {class: 'num'}, duration(t.eta)),
    h('td', {class: 'num'}, duration(j.gpu_seconds)),
    h('td', {class: 'num'}, cost(j.cost)),
    h('td', {title: new Date(j.created_at).toLocaleString()}, ago(j.created_at)),
    h('td', {}, cancel));
}
