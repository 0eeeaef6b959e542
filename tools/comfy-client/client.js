// Drives a ComfyUI server - here the farm's ComfyUI API - with a real
// ComfyUI client, @saintno/comfyui-sdk: it queues ComfyUI's standard
// text-to-image workflow, follows its progress over the websocket, checks
// the history, downloads the images into a folder and prints a JSON
// summary on stdout. Any failure exits non-zero.
//
//   COMFY_TOKEN=... node client.js --url http://127.0.0.1:8080 --out DIR \
//     [--ckpt NAME] [--prompt TEXT] [--negative TEXT] [--seed N] [--steps N]
//     [--cfg X] [--sampler NAME] [--scheduler NAME] [--width N] [--height N]
//     [--batch N] [--timeout MS]
//
// The bearer token comes from COMFY_TOKEN, so that it stays off the
// process list. Used by e2e/comfy_test.go through scripts/comfy-client-test.sh.

import { CallWrapper, ComfyApi, PromptBuilder } from "@saintno/comfyui-sdk";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    out: { type: "string" },
    ckpt: { type: "string", default: "v1-5-pruned-emaonly" },
    prompt: { type: "string", default: "a red cube on a table" },
    negative: { type: "string", default: "blurry" },
    seed: { type: "string", default: "42" },
    steps: { type: "string", default: "20" },
    cfg: { type: "string", default: "7.5" },
    sampler: { type: "string", default: "euler" },
    scheduler: { type: "string", default: "normal" },
    width: { type: "string", default: "512" },
    height: { type: "string", default: "512" },
    batch: { type: "string", default: "1" },
    timeout: { type: "string", default: "120000" }
  }
});

function fail(what, err) {
  const detail = err?.cause ? ` (cause: ${JSON.stringify(err.cause)})` : "";
  console.error(`comfy-client: ${what}: ${err?.message ?? err}${detail}`);
  process.exit(1);
}

if (!args.url || !args.out) fail("usage", "--url and --out are required");
const token = process.env.COMFY_TOKEN;
if (!token) fail("usage", "COMFY_TOKEN is not set");
setTimeout(() => fail("timeout", `no result after ${args.timeout} ms`), Number(args.timeout)).unref();

// ComfyUI's default text-to-image workflow, in API format.
const workflow = {
  3: {
    class_type: "KSampler",
    inputs: {
      seed: 0, steps: 20, cfg: 8, sampler_name: "euler", scheduler: "normal", denoise: 1,
      model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0]
    },
    _meta: { title: "KSampler" }
  },
  4: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "" }, _meta: { title: "Load Checkpoint" } },
  5: { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 }, _meta: { title: "Empty Latent Image" } },
  6: { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] }, _meta: { title: "CLIP Text Encode (Prompt)" } },
  7: { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] }, _meta: { title: "CLIP Text Encode (Prompt)" } },
  8: { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] }, _meta: { title: "VAE Decode" } },
  9: { class_type: "SaveImage", inputs: { filename_prefix: "ComfyUI", images: ["8", 0] }, _meta: { title: "Save Image" } }
};

const inputs = {
  ckpt: "4.inputs.ckpt_name", positive: "6.inputs.text", negative: "7.inputs.text", seed: "3.inputs.seed",
  steps: "3.inputs.steps", cfg: "3.inputs.cfg", sampler: "3.inputs.sampler_name", scheduler: "3.inputs.scheduler",
  width: "5.inputs.width", height: "5.inputs.height", batch: "5.inputs.batch_size"
};
let builder = new PromptBuilder(workflow, Object.keys(inputs), ["images"]).setOutputNode("images", "9");
for (const [key, at] of Object.entries(inputs)) builder = builder.setInputNode(key, at);
builder = builder
  .input("ckpt", args.ckpt)
  .input("positive", args.prompt)
  .input("negative", args.negative)
  .input("seed", Number(args.seed))
  .input("steps", Number(args.steps))
  .input("cfg", Number(args.cfg))
  .input("sampler", args.sampler)
  .input("scheduler", args.scheduler)
  .input("width", Number(args.width))
  .input("height", Number(args.height))
  .input("batch", Number(args.batch));

const api = new ComfyApi(args.url, undefined, { credentials: { type: "bearer_token", token } });
api.on("auth_error", (ev) => fail("authentication", `the server answered ${ev.detail?.status}`));
api.on("connection_error", (ev) => fail("connection", ev.detail));
// Every message of the websocket counts, also those that come before the
// CallWrapper listens (a tiny model renders in milliseconds).
const seen = { executing: 0, executed: 0, status: 0, progress: [] };
api.on("executing", () => seen.executing++);
api.on("executed", () => seen.executed++);
api.on("status", () => seen.status++);
api.on("progress", (ev) => seen.progress.push([ev.detail.value, ev.detail.max]));
const connected = new Promise((resolve) => api.on("connected", resolve));
api.init(5, 500);
await api.waitForReady();
await connected;

let promptId;
const result = await new CallWrapper(api, builder)
  .onPending((id) => (promptId = id))
  .onFailed((err) => fail("prompt", err))
  .run();
if (!result?.images?.images?.length) fail("prompt", `no images in the result ${JSON.stringify(result)}`);

const history = await api.getHistory(promptId);
if (!history?.status?.completed) fail("history", `prompt ${promptId} is not completed: ${JSON.stringify(history)}`);
const listed = history.outputs?.["9"]?.images?.map((i) => i.filename) ?? [];

await mkdir(args.out, { recursive: true });
const files = [];
for (const info of result.images.images) {
  const blob = await api.getImage(info);
  if (blob.type !== "image/png") fail("download", `${info.filename} came as ${blob.type}: ${await blob.text()}`);
  await writeFile(path.join(args.out, info.filename), Buffer.from(await blob.arrayBuffer()));
  files.push(info.filename);
}
console.log(JSON.stringify({ prompt_id: promptId, files, history_files: listed, ...seen }));
api.destroy();
process.exit(0);
