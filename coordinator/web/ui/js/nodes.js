// The nodes: backend, GPUs, memory in use, the task each one renders,
// polled from their etcd entries (GET /v1/nodes).

import {api, poll} from './api.js';
import {ago, badge, bar, bytes, h, replace} from './dom.js';

const columns = ['Node', 'State', 'Backend', 'Devices', 'Memory', 'Current task', 'Tasks', 'Models', 'Price', 'Up'];

export function mount(main) {
  const body = h('tbody');
  const error = h('p', {class: 'error', role: 'alert'});
  replace(main, h('div', {class: 'page-head'}, h('h1', {}, 'Nodes')), error,
    h('table', {class: 'list', id: 'nodes'}, h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))), body),
    h('p', {class: 'muted'}, 'VRAM in use is what the driver reports for every process on the cards. ' +
      'A CPU node has no live figure: it shows its render budget and the host\'s memory. Usable is what one task may take.'));
  return poll(3000, async () => {
    try {
      const nodes = (await api('/v1/nodes')).nodes;
      nodes.sort((a, b) => a.id.localeCompare(b.id));
      replace(body, nodes.length ? nodes.map(row) :
        h('tr', {}, h('td', {colspan: columns.length, class: 'empty'}, 'No node is registered: start one with ', h('code', {}, 'farm node'), '.')));
      error.textContent = '';
    } catch (e) {
      error.textContent = 'Cannot list nodes: ' + e.message;
    }
  });
}

function row(n) {
  const gpus = n.gpus || [];
  const task = n.current_task ? [h('a', {href: '#/jobs/' + encodeURIComponent(n.current_job)}, n.current_job),
    h('div', {class: 'sub'}, 'task ' + n.current_task.replace(n.current_job + '-', ''))] : '—';
  const models = n.models_loaded && n.models_loaded.length ? n.models_loaded.join(', ') : '—';
  return h('tr', {dataset: {node: n.id}},
    h('td', {}, h('strong', {}, n.id), h('div', {class: 'sub'}, n.host)),
    h('td', {}, badge(n.state)),
    h('td', {}, n.backend, h('div', {class: 'sub'}, [n.renderer, n.version].filter(Boolean).join(' · '))),
    h('td', {}, gpus.length ? gpus.map((g) => h('div', {}, g.name, g.compute_capability ? ' (sm ' + g.compute_capability + ')' : '')) : '—'),
    h('td', {class: 'progress'}, memory(n)),
    h('td', {}, task),
    h('td', {class: 'num'}, n.tasks_done + ' done', n.tasks_failed ? h('div', {class: 'sub failed-count'}, n.tasks_failed + ' failed') : null),
    h('td', {title: (n.models_on_disk || []).join('\n')}, models,
      h('div', {class: 'sub'}, (n.models_on_disk || []).length + ' on disk')),
    h('td', {class: 'num'}, n.price_per_hour ? n.price_per_hour + ' ' + (n.currency || '') + '/h' : '—'),
    h('td', {title: new Date(n.started_at).toLocaleString()}, ago(n.started_at).replace(' ago', ''), h('div', {class: 'sub'}, 'seen ' + ago(n.updated_at))));
}

// memory is a CUDA node's VRAM in use (total less free, all processes, as
// last reported); a CPU node reports no use, so it shows its budget.
function memory(n) {
  const gpus = n.gpus || [];
  if (n.backend !== 'cuda' || gpus.length === 0) {
    return [h('div', {}, 'budget ' + bytes(n.usable_bytes)), h('div', {class: 'sub'}, 'host ' + bytes(n.memory_bytes) + ' RAM')];
  }
  const total = gpus.reduce((s, g) => s + g.total_vram, 0);
  const used = total - gpus.reduce((s, g) => s + g.free_vram, 0);
  return [bar(used, 0, total), h('span', {class: 'count'}, bytes(used) + ' / ' + bytes(total) + ' VRAM used'),
    h('div', {class: 'sub'}, 'usable ' + bytes(n.usable_bytes))];
}
