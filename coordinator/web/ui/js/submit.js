// The batch form: it builds a wire.JobSpec and POSTs it to /v1/jobs. The
// samplers, schedules, defaults and limits come from /ui/config.json, which
// the Go side fills from the engine's scheduler package.

import {api} from './api.js';
import {h, replace} from './dom.js';

// remembered keeps the last batch's fields for the next one.
const remembered = 'latentfarm.form';

export function mount(main) {
  const error = h('div', {class: 'error', role: 'alert', id: 'submit-error'});
  const form = h('form', {class: 'card submit', id: 'submit-form', novalidate: true});
  replace(main, h('div', {class: 'page-head'}, h('h1', {}, 'Submit a batch')), form);
  let stopped = false;
  Promise.all([api('/ui/config.json'), api('/v1/nodes').catch(() => ({nodes: []}))]).then(([cfg, {nodes}]) => {
    if (!stopped) build(form, error, cfg, nodes);
  }, (e) => replace(form, h('p', {class: 'error'}, 'Cannot load the form settings: ' + e.message)));
  return () => (stopped = true);
}

function build(form, error, cfg, nodes) {
  const d = cfg.defaults;
  const lim = cfg.limits;
  const models = [...new Set(nodes.flatMap((n) => [...(n.models_loaded || []), ...(n.models_on_disk || [])]))].sort();
  const field = (label, input, hint) => h('label', {}, label, input, hint ? h('small', {}, hint) : null);
  const num = (name, attrs) => h('input', {name, type: 'number', required: true, ...attrs});
  const select = (name, values, value) => h('select', {name}, values.map((v) => h('option', {value: v, selected: v === value}, v)));

  replace(form,
    field('Prompts', h('textarea', {name: 'prompts', rows: 4, required: true, placeholder: 'a lighthouse at dusk, oil painting'}), 'One prompt a line.'),
    field('Negative prompt', h('textarea', {name: 'negative_prompt', rows: 2})),
    h('div', {class: 'row'},
      field('Model', h('input', {name: 'model', required: true, list: 'models', autocomplete: 'off'}),
        models.length ? 'Models the nodes have: ' + models.join(', ') : 'No node lists a model; nodes fetch missing ones from the model store.'),
      field('Name', h('input', {name: 'name', placeholder: 'optional label'}))),
    h('datalist', {id: 'models'}, models.map((m) => h('option', {value: m}))),
    h('div', {class: 'row'},
      field('Images per prompt', num('images_per_prompt', {min: 1, max: lim.max_frames, value: 4})),
      field('Seeds', h('input', {name: 'seeds', placeholder: 'random'}), 'A first seed (42), a list (1, 7, 9: one image each), or empty.')),
    h('div', {class: 'row'},
      field('Steps', num('steps', {min: 1, max: lim.max_steps, value: d.steps})),
      field('CFG scale', num('cfg_scale', {min: 0, max: lim.max_cfg_scale, step: 0.5, value: d.cfg_scale})),
      field('Sampler', select('sampler', cfg.samplers, d.sampler)),
      field('Schedule', select('schedule', cfg.schedules, d.schedule))),
    h('div', {class: 'row'},
      field('Width', num('width', {min: lim.min_size, max: lim.max_size, step: lim.size_step, value: d.width})),
      field('Height', num('height', {min: lim.min_size, max: lim.max_size, step: lim.size_step, value: d.height})),
      field('Priority', select('priority', cfg.priorities, d.priority))),
    error,
    h('div', {class: 'buttons'}, h('button', {type: 'submit', id: 'submit'}, 'Submit batch')));

  restore(form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
    replace(error);
    let spec;
    try {
      spec = toSpec(form);
    } catch (err) {
      replace(error, err.message);
      return;
    }
    form.querySelector('#submit').disabled = true;
    try {
      const res = await api('/v1/jobs', {method: 'POST', body: spec});
      localStorage.setItem(remembered, JSON.stringify(Object.fromEntries(new FormData(form))));
      location.hash = '#/jobs/' + encodeURIComponent(res.job.id);
    } catch (err) {
      showError(form, error, err);
    } finally {
      form.querySelector('#submit').disabled = false;
    }
  });
}

// toSpec reads the form into a JobSpec; the coordinator validates it.
function toSpec(form) {
  const v = Object.fromEntries(new FormData(form));
  const spec = {
    model: v.model.trim(),
    prompts: v.prompts.split('\n').map((p) => p.trim()).filter(Boolean),
    steps: Number(v.steps),
    cfg_scale: Number(v.cfg_scale),
    sampler: v.sampler,
    schedule: v.schedule,
    width: Number(v.width),
    height: Number(v.height),
    priority: v.priority,
  };
  if (v.name.trim()) spec.name = v.name.trim();
  if (v.negative_prompt.trim()) spec.negative_prompt = v.negative_prompt.trim();
  const count = Number(v.images_per_prompt);
  const seeds = v.seeds.split(/[\s,]+/).filter(Boolean).map(Number);
  if (seeds.some((s) => !Number.isSafeInteger(s))) throw new Error('Seeds: whole numbers, separated by commas.');
  if (seeds.length > 1) spec.seeds = seeds; // one image per seed of the list
  else if (seeds.length === 1) spec.seeds = {start: seeds[0], count};
  else spec.images_per_prompt = count;
  return spec;
}

// showError names the coordinator's complaint and marks the fields it is about.
function showError(form, error, err) {
  replace(error, err.message, err.fields.length ? h('ul', {}, err.fields.map((f) => h('li', {}, h('code', {}, f.field), ': ', f.reason))) : null);
  for (const f of err.fields) {
    const input = form.elements[f.field.split(/[.[]/)[0]]; // "prompts[3]" is the prompts box
    if (input) input.classList.add('invalid');
  }
}

function restore(form) {
  let saved;
  try {
    saved = JSON.parse(localStorage.getItem(remembered) || '{}');
  } catch {
    return;
  }
  for (const [k, v] of Object.entries(saved)) if (form.elements[k]) form.elements[k].value = v;
}
