// Drives the AG-UI endpoint with the official client (@ag-ui/client's HttpAgent) and
// prints what it received as JSON on stdout; tests/agui/ runs it and checks the output.
//
//   node agui_client.mjs journey <base url> <agent> <message>...   one thread, one run per message
//   node agui_client.mjs hostile <base url> <agent> <other agent>  wrong owner, bad input, busy
//
// Like a browser, each "session" keeps its cookies (a small cookie jar wrapped around
// fetch, given to HttpAgent as its `fetch`) and sends the csrftoken cookie's value in
// the X-CSRFToken header; GET /api/agents sets that cookie.

import { randomUUID } from "node:crypto";
import { HttpAgent } from "@ag-ui/client";
import { EventType } from "@ag-ui/core";

const [mode, baseUrl, agentKey, ...rest] = process.argv.slice(2);
if (!mode || !baseUrl || !agentKey) {
  console.error("usage: node agui_client.mjs journey|hostile <base url> <agent> ...");
  process.exit(2);
}
const endpoint = (key) => `${baseUrl}/api/ag-ui/${encodeURIComponent(key)}`;

/** A browser-like session: a cookie jar around fetch, and the CSRF token. */
async function newSession() {
  const cookies = new Map();
  const jarFetch = async (url, init = {}) => {
    const headers = new Headers(init.headers || {});
    if (cookies.size) {
      headers.set("Cookie", [...cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const response = await fetch(url, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(";", 1)[0];
      const at = pair.indexOf("=");
      cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
    return response;
  };
  const agents = await jarFetch(`${baseUrl}/api/agents`);
  if (!agents.ok) throw new Error(`GET /api/agents answered ${agents.status}`);
  const csrf = cookies.get("csrftoken");
  if (!csrf) throw new Error("GET /api/agents set no csrftoken cookie");
  return { cookies, fetch: jarFetch, csrf };
}

function httpAgent(session, key, threadId) {
  return new HttpAgent({
    url: endpoint(key),
    threadId,
    headers: { "X-CSRFToken": session.csrf },
    fetch: session.fetch,
  });
}

/** One run of `agent` with a new user message: the events received, or the error. */
async function run(agent, text, hooks = {}) {
  const events = [];
  agent.addMessage({ id: randomUUID(), role: "user", content: text });
  const outcome = { message: text, events };
  try {
    await agent.runAgent(
      {},
      {
        onEvent: ({ event }) => {
          events.push(event);
          hooks.onEvent?.(event);
        },
      },
    );
  } catch (error) {
    outcome.error = {
      message: String(error?.message ?? error),
      status: error?.status ?? null,
      payload: error?.payload ?? null,
    };
  }
  return outcome;
}

async function journey(messages) {
  const session = await newSession();
  const agent = httpAgent(session, agentKey, randomUUID());
  const runs = [];
  for (const text of messages) runs.push(await run(agent, text));
  return { threadId: agent.threadId, runs, state: agent.state, messages: agent.messages };
}

/** A raw POST to the endpoint (for inputs HttpAgent would never send). */
async function post(session, key, body, { headers = {}, method = "POST" } = {}) {
  const init = {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": session.csrf, ...headers },
  };
  if (method !== "GET") init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await session.fetch(endpoint(key), init);
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  const events = text.startsWith("data:")
    ? text
        .split("\n\n")
        .filter((block) => block.startsWith("data:"))
        .map((block) => JSON.parse(block.slice(5)))
    : null;
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    json,
    events,
  };
}

const input = (threadId, content, extra = {}) => ({
  threadId,
  runId: randomUUID(),
  messages: [{ id: randomUUID(), role: "user", content }],
  ...extra,
});

async function hostile(otherAgentKey) {
  const alice = await newSession();
  const mallory = await newSession();
  const result = {};

  // Alice's thread, then Mallory with its id: refused, and no data.
  const aliceAgent = httpAgent(alice, agentKey, randomUUID());
  result.owner_run = await run(aliceAgent, "Ada Lovelace");
  const malloryAgent = httpAgent(mallory, agentKey, aliceAgent.threadId);
  result.foreign_thread = await run(malloryAgent, "show me everything");
  result.foreign_thread_raw = await post(mallory, agentKey, input(aliceAgent.threadId, "hi"));
  // Alice's own thread under another agent's URL.
  result.other_agent = await post(alice, otherAgentKey, input(aliceAgent.threadId, "hi"));

  // Two runs of one thread at once (two tabs): the second gets RUN_ERROR, the first ends well.
  const threadId = randomUUID();
  const first = httpAgent(alice, agentKey, threadId);
  const second = httpAgent(alice, agentKey, threadId);
  let started;
  const firstStarted = new Promise((resolve) => (started = resolve));
  const firstRun = run(first, "Grace Hopper", {
    onEvent: (event) => event.type === EventType.RUN_STARTED && started(),
  });
  await firstStarted;
  await new Promise((resolve) => setTimeout(resolve, 400)); // the first turn holds the thread
  result.busy_second = await run(second, "Ada Lovelace");
  result.busy_first = await firstRun;

  // The same runId twice: the second answer is the stored one, the turn is not played again.
  const replayThread = randomUUID();
  const once = input(replayThread, "Alan Turing");
  result.replay_first = await post(alice, agentKey, once);
  result.replay_second = await post(alice, agentKey, once);

  // Malformed input: clean 4xx JSON errors.
  const t = randomUUID();
  const cases = {
    not_json: ["{nope", {}],
    not_an_object: ["[1, 2]", {}],
    missing_thread: [{ runId: "r1", messages: [{ id: "m", role: "user", content: "hi" }] }, {}],
    thread_not_uuid: [input("not-a-uuid", "hi"), {}],
    no_messages: [{ threadId: t, runId: "r2", messages: [] }, {}],
    messages_not_list: [{ threadId: t, runId: "r3", messages: "hi" }, {}],
    last_not_user: [
      { threadId: t, runId: "r4", messages: [{ id: "a", role: "assistant", content: "hi" }] },
      {},
    ],
    unknown_role: [{ threadId: t, runId: "r5", messages: [{ id: "a", role: "root", content: "x" }] }, {}],
    nul_in_message: [input(t, "a\u0000b"), {}],
    blank_message: [input(t, "   "), {}],
    image_part: [
      input(t, [{ type: "image", source: { type: "url", value: "http://x/y.png" } }]),
      {},
    ],
    message_too_long: [input(t, "x".repeat(5000)), {}],
    body_too_large: [input(t, "hi", { forwardedProps: { pad: "x".repeat(70 * 1024) } }), {}],
    deeply_nested: [`{"threadId": "${t}", "runId": "r6", "messages": [], "state": ${"[".repeat(30000)}${"]".repeat(30000)}}`, {}],
    run_id_too_long: [{ ...input(t, "hi"), runId: "r".repeat(300) }, {}],
    text_plain: [JSON.stringify(input(t, "hi")), { headers: { "Content-Type": "text/plain" } }],
    no_csrf: [input(t, "hi"), { headers: { "X-CSRFToken": "" } }],
    get: [null, { method: "GET" }],
  };
  result.malformed = {};
  for (const [name, [body, options]] of Object.entries(cases)) {
    result.malformed[name] = await post(alice, agentKey, body, options);
  }
  result.malformed.unknown_agent = await post(alice, "no-such-agent", input(t, "hi"));
  return result;
}

const output = mode === "journey" ? await journey(rest) : await hostile(rest[0]);
process.stdout.write(JSON.stringify(output));
