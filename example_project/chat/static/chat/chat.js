/*
 * The example chat page: plain JavaScript over the journeys HTTP API (no build step).
 *
 *   GET  agents                          -> the picker, the model name, the stand-in banner
 *   POST conversations                   -> a new conversation with the chosen agent
 *   GET  conversations/<id>              -> resume after a reload (transcript + progress),
 *                                           and the parked journeys after each turn
 *   POST conversations/<id>/messages     -> one turn; the reply, step and progress
 *   GET  conversations/<id>/events (SSE) -> assistant.delta while a turn streams
 *   POST conversations/<id>/approvals/<approval_id> -> the Approve / Reject buttons of a
 *                                           tool call waiting for the user's confirmation
 *
 * The streamed text is shown as it arrives; the POST response then replaces it with
 * the final reply, so a missed delta never leaves a wrong message on screen.
 */
(function () {
  "use strict";

  var STORAGE_KEY = "agent-runtime-example:conversation";
  var MAX_BUSY_RETRIES = 5;

  var app = document.getElementById("chat-app");
  var API = app.dataset.apiBase || "/api/";

  function $(id) {
    return document.getElementById(id);
  }

  var el = {
    select: $("agent-select"),
    description: $("agent-description"),
    startOver: $("start-over"),
    person: $("talk-to-person"),
    model: $("model-name"),
    standin: $("standin-banner"),
    journey: $("journey-name"),
    step: $("step-label"),
    bar: $("progress-bar"),
    fill: $("progress-fill"),
    progressText: $("progress-text"),
    steps: $("step-list"),
    complete: $("complete-banner"),
    transcript: $("transcript"),
    error: $("error"),
    form: $("composer"),
    input: $("message-input"),
    send: $("send-button"),
    conversationId: $("conversation-id"),
    parkedPanel: $("parked-panel"),
    parkedList: $("parked-list"),
    approvalPanel: $("approval-panel"),
    approvalList: $("approval-list"),
  };

  // A first message to try per agent (they work with the offline stand-in too).
  var FIRST_MESSAGES = {
    "front-desk": "I'd like a quote for my car",
    onboarding: "Hi, I'm Ada Lovelace",
    quote: "Car insurance, please",
    claim: "My policy number is POL-123456",
  };

  var agents = {}; // key -> {key, name, description, steps}
  var conversation = null; // {id, agent}
  var events = null; // EventSource of the current conversation
  var pending = null; // the assistant bubble of the turn in flight
  var pendingMessageId = null; // the id this page gave the message of that turn
  var pendingRun = null; // that turn's run id, once its run.started event named it
  var others = {}; // run id -> assistant bubble of a turn sent from another tab
  var sent = {}; // message ids this page sent: their turns are never another tab's
  var finished = {}; // run ids of this page's turns that are over (late events: ignored)
  var busy = false;
  var approvalStatus = {}; // approval id -> its status as this page last saw it
  var announced = {}; // approval ids whose outcome this page has shown

  // -- HTTP ------------------------------------------------------------------------------

  function ApiError(status, body, retryAfter) {
    var error = (body && body.error) || {};
    this.status = status;
    this.code = error.code || "http_" + status;
    this.message = error.message || "The server answered " + status + ".";
    this.retryAfter = retryAfter;
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function newUuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  // Which bubble an event of run ``runId`` belongs to: this page's turn, another tab's
  // turn on the same conversation, or none (replayed history).
  function bubbleOf(runId) {
    if (runId && others[runId]) return others[runId];
    if (runId && finished[runId]) return null;
    if (pending && (!runId || !pendingRun || runId === pendingRun)) return pending;
    return null;
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  async function api(path, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    var init = { method: options.method || "GET", credentials: "same-origin", headers: headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
      init.body = JSON.stringify(options.body);
    }
    var response;
    try {
      response = await fetch(API + path, init);
    } catch (networkError) {
      throw new ApiError(0, { error: { code: "network", message: "The server cannot be reached." } });
    }
    var data = null;
    try {
      data = await response.json();
    } catch (notJson) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, data, Number(response.headers.get("Retry-After")) || 1);
    }
    return data;
  }

  function sleep(seconds) {
    return new Promise(function (resolve) {
      setTimeout(resolve, seconds * 1000);
    });
  }

  // -- rendering -------------------------------------------------------------------------

  function humanize(value) {
    if (value === null || value === undefined || value === "") return "–";
    var text = String(value).replace(/[_-]+/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = !message;
  }

  function scrollToEnd() {
    el.transcript.scrollTop = el.transcript.scrollHeight;
  }

  function addMessage(role, text, options) {
    options = options || {};
    var item = document.createElement("li");
    item.className = "message message-" + role;
    item.dataset.role = role;
    item.setAttribute("data-testid", "message");
    if (options.final !== false) item.dataset.final = "true";
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = text;
    item.appendChild(bubble);
    el.transcript.appendChild(item);
    scrollToEnd();
    return item;
  }

  function addNote(text, beforeItem) {
    var item = document.createElement("li");
    item.dataset.kind = "note";
    item.className = "note";
    item.dataset.role = "note";
    item.setAttribute("data-testid", "note");
    item.textContent = text;
    if (beforeItem && beforeItem.parentNode === el.transcript) {
      el.transcript.insertBefore(item, beforeItem);
    } else {
      el.transcript.appendChild(item);
    }
    scrollToEnd();
    return item;
  }

  function setBubbleText(item, text) {
    item.querySelector(".bubble").textContent = text;
    scrollToEnd();
  }

  function renderProgress(data) {
    var progress = data.progress || { index: 0, total: 0, steps: [] };
    var steps = progress.steps || [];
    var index = progress.index || 0;
    var total = progress.total || steps.length;
    var journeyKey = data.journey || data.agent || "";
    var journey = agents[journeyKey];
    el.journey.textContent = journey ? journey.name : humanize(journeyKey);
    el.journey.dataset.journey = journeyKey;
    el.step.textContent = humanize(data.step);
    el.step.dataset.step = data.step === null || data.step === undefined ? "" : String(data.step);
    el.bar.setAttribute("aria-valuemax", String(total));
    el.bar.setAttribute("aria-valuenow", String(index));
    el.bar.dataset.index = String(index);
    el.bar.dataset.total = String(total);
    el.fill.style.width = total ? Math.round((index / total) * 100) + "%" : "0%";
    // One function computes progress (the server's journey_position): a loop is one
    // position with its round ("driver 2"), so the bar never steps back inside a loop.
    var text = total && index ? "Step " + index + " of " + total : "Not started";
    if (total && index && progress.round) text += " · " + (progress.item || "item") + " " + progress.round;
    el.progressText.textContent = text;
    el.bar.dataset.round = progress.round ? String(progress.round) : "";
    el.steps.textContent = "";
    steps.forEach(function (step, position) {
      var item = document.createElement("li");
      var state = position + 1 < index ? "done" : position + 1 === index ? "current" : "todo";
      if (state === "current" && data.complete) state = "done";
      item.className = "step step-" + state;
      item.dataset.step = String(step);
      item.dataset.state = state;
      item.textContent = humanize(step);
      el.steps.appendChild(item);
    });
    el.complete.hidden = !data.complete;
    app.dataset.complete = data.complete ? "true" : "false";
  }

  // Journeys parked by a switch ("Actually, I want to file a claim instead"): listed with
  // their step, each with a button that asks to go back to it (a plain message, so the
  // model, or the offline stand-in, resumes it through the conversation's own turn).
  function renderParked(data) {
    var parked = (data && data.parked) || [];
    var rows = {};
    ((data && data.journeys) || []).forEach(function (journey) {
      rows[journey.journey] = journey;
    });
    el.parkedList.textContent = "";
    el.parkedPanel.hidden = parked.length === 0;
    parked.forEach(function (key) {
      var item = document.createElement("li");
      item.className = "parked-item";
      item.dataset.journey = key;
      var label = document.createElement("span");
      var agent = agents[key];
      var step = rows[key] && rows[key].step ? " – at " + humanize(rows[key].step) : "";
      label.textContent = (agent ? agent.name : humanize(key)) + step;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button button-secondary button-small";
      button.textContent = "Resume";
      button.setAttribute("data-testid", "resume-" + key);
      button.addEventListener("click", function () {
        send("Let's get back to my " + key + ", please");
      });
      item.appendChild(label);
      item.appendChild(button);
      el.parkedList.appendChild(item);
    });
  }

  // Tools that need approval (people in the loop): a held call waits for the user (Approve
  // / Reject here, or a yes / no in words) or for staff (decided in the admin). The list
  // comes from the conversation's detail, refreshed after each turn and on approval.*
  // events; a decision made outside this page's turns (a button, staff) is shown with
  // its outcome, since no model reply follows it.
  function renderApprovals(data, announce) {
    var approvals = (data && data.approvals) || [];
    // A decision applied between turns leaves its outcome as a tool result of its own
    // ("approval_<id>"); one said in words ("yes") is answered by that turn's reply.
    var between = {};
    ((data && data.messages) || []).forEach(function (message) {
      if (message.role === "tool" && /^approval_/.test(message.tool_call_id || "")) {
        between[message.tool_call_id] = true;
      }
    });
    approvals.forEach(function (approval) {
      var before = approvalStatus[approval.id];
      var settled = approval.status === "executed" || approval.status === "rejected";
      if (
        announce && settled && (before === "pending" || before === "approved") &&
        between["approval_" + String(approval.id).replace(/-/g, "")]
      ) {
        showOutcome(approval);
      }
      approvalStatus[approval.id] = approval.status;
    });
    var waiting = approvals.filter(function (approval) {
      return approval.status === "pending";
    });
    el.approvalList.textContent = "";
    el.approvalPanel.hidden = waiting.length === 0;
    app.dataset.approvals = String(waiting.length);
    waiting.forEach(function (approval) {
      var item = document.createElement("li");
      item.className = "approval-item";
      item.setAttribute("data-testid", "approval");
      item.dataset.approvalId = approval.id;
      item.dataset.approver = approval.approver;
      item.dataset.status = approval.status;
      var summary = document.createElement("span");
      summary.setAttribute("data-testid", "approval-summary");
      summary.textContent = approval.summary || approval.tool;
      item.appendChild(summary);
      if (approval.approver === "user") {
        var actions = document.createElement("span");
        actions.className = "approval-actions";
        [["approve", "Approve", "button-small"], ["reject", "Reject", "button-secondary button-small"]]
          .forEach(function (choice) {
            var button = document.createElement("button");
            button.type = "button";
            button.className = "button " + choice[2];
            button.textContent = choice[1];
            button.setAttribute("data-testid", "approval-" + choice[0]);
            button.addEventListener("click", function () {
              decideApproval(approval.id, choice[0]);
            });
            actions.appendChild(button);
          });
        item.appendChild(actions);
      } else {
        var note = document.createElement("span");
        note.className = "approval-waiting";
        note.setAttribute("data-testid", "approval-waiting");
        note.textContent = "Waiting for staff";
        item.appendChild(note);
      }
      el.approvalList.appendChild(item);
    });
  }

  // The outcome of a decision no turn of this page reported: who decided, and the tool's
  // result (what the journey says next), as the model reads it too.
  function showOutcome(approval) {
    if (announced[approval.id]) return;
    announced[approval.id] = true;
    var by = approval.decided_by || approval.approver;
    var rejected = approval.status === "rejected";
    var note = addNote(
      (rejected ? "Rejected by " : "Approved by ") + by + ": " + (approval.summary || approval.tool)
    );
    note.setAttribute("data-testid", "approval-outcome");
    note.dataset.approvalId = approval.id;
    note.dataset.outcome = approval.status;
    if (!rejected && approval.result) {
      addMessage("assistant", approval.result).dataset.approvalId = approval.id;
    }
  }

  async function decideApproval(approvalId, decision) {
    if (busy || !conversation) return;
    var current = conversation;
    showError("");
    setBusy(true);
    el.approvalList.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
    try {
      var answer = await api("conversations/" + current.id + "/approvals/" + approvalId, {
        method: "POST",
        body: { decision: decision },
      });
      var approval = (answer && answer.approval) || {};
      if (conversation !== current) return;
      if (approval.status === "executed" || approval.status === "rejected") showOutcome(approval);
    } catch (error) {
      // 409: decided meanwhile (said in words, another tab); the refresh shows how.
      if (conversation === current && error.status !== 409) showError(error.message);
    } finally {
      if (conversation === current) {
        setBusy(false);
        await refreshParked(current.id, true, true);
      }
    }
  }

  // After each turn (and on approval.* events): the parked journeys and the approvals;
  // ``announce``: show the outcome of decisions made meanwhile; ``progress``: the step too.
  async function refreshParked(conversationId, announce, progress) {
    try {
      var data = await api("conversations/" + conversationId);
      if (!conversation || conversation.id !== conversationId) return;
      renderParked(data);
      renderApprovals(data, !!announce);
      if (progress && !busy) renderProgress(data);
    } catch (error) {
      // The list is a convenience; the conversation goes on without it.
    }
  }

  function resetProgress(agentKey) {
    var agent = agents[agentKey] || { steps: [] };
    renderProgress({
      agent: agentKey,
      journey: agentKey,
      step: null,
      complete: false,
      progress: { index: 0, total: agent.steps.length, steps: agent.steps },
    });
  }

  function setBusy(value) {
    busy = value;
    app.dataset.busy = value ? "true" : "false";
    el.send.disabled = value || !conversation;
    el.input.disabled = !conversation;
  }

  function describeAgent(key) {
    var agent = agents[key];
    el.description.textContent = agent ? agent.description || "" : "";
  }

  function renderTranscript(messages) {
    el.transcript.textContent = "";
    messages.forEach(function (message) {
      if (message.role === "user") {
        addMessage("user", message.content || "");
      } else if (message.role === "tool" && /^approval_/.test(message.tool_call_id || "")) {
        // A decision applied between turns (a button, staff): its outcome, as said then.
        addMessage("assistant", message.content || "").dataset.approval = "true";
      } else if (message.role === "assistant") {
        (message.tool_calls || []).forEach(function (call) {
          var name = call && call.function ? call.function.name : "a tool";
          addNote("called " + name);
        });
        if (message.content) addMessage("assistant", message.content);
      }
    });
  }

  // -- live events (SSE) -----------------------------------------------------------------

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (notJson) {
      return {};
    }
  }

  var live = false; // past the replay of stored events (other tabs' turns are shown)

  function openEvents(conversationId) {
    closeEvents();
    live = false;
    others = {};
    if (!window.EventSource) return;
    events = new EventSource(API + "conversations/" + conversationId + "/events");
    events.addEventListener("run.started", function (event) {
      // Every turn starts with the message it answers: ours (by the id this page gave
      // it), or another tab's, which is shown live as it happens.
      var data = parse(event);
      if (!data.run_id) return;
      if (sent[data.message_id]) {
        // Ours (events of a polled stream may come after the reply did).
        if (pending && data.message_id === pendingMessageId) pendingRun = data.run_id;
        return;
      }
      if (others[data.run_id] || !pending && !live) return;
      if (typeof data.message === "string" && !data.resumed) {
        addMessage("user", data.message).dataset.otherTab = "true";
      }
      var bubble = addMessage("assistant", "", { final: false });
      bubble.classList.add("typing");
      bubble.dataset.run = data.run_id;
      others[data.run_id] = bubble;
    });
    events.addEventListener("assistant.delta", function (event) {
      var data = parse(event);
      if (typeof data.delta !== "string") return;
      // Counted for the browser tests (and curious readers of the DOM).
      app.dataset.deltas = String(Number(app.dataset.deltas || 0) + 1);
      var item = bubbleOf(data.run_id);
      if (!item) return;
      item.dataset.streamed = "true";
      item.classList.remove("typing");
      item.querySelector(".bubble").textContent += data.delta;
      scrollToEnd();
    });
    events.addEventListener("tool.call", function (event) {
      // Only while a turn is in flight: replayed history is rendered from the transcript.
      var data = parse(event);
      var item = bubbleOf(data.run_id);
      if (item && data.name) addNote("called " + data.name, item);
    });
    events.addEventListener("assistant.message", function (event) {
      // Another tab's turn is complete: its final text replaces the streamed one.
      var data = parse(event);
      var item = data.run_id ? others[data.run_id] : null;
      if (!item || typeof data.content !== "string") return;
      setBubbleText(item, data.content);
      item.classList.remove("typing");
      item.dataset.final = "true";
      delete others[data.run_id];
    });
    events.addEventListener("staff.message", function (event) {
      // A person answering from the admin's staff console (people in the loop).
      var data = parse(event);
      if (typeof data.content !== "string") return;
      addNote((data.staff || "Staff") + " (a person) replied");
      addMessage("assistant", data.content).dataset.staff = data.staff || "staff";
    });
    events.addEventListener("handoff.taken", function (event) {
      addNote((parse(event).staff || "A person") + " joined the conversation");
    });
    events.addEventListener("handoff.returned", function () {
      addNote("The assistant is back");
    });
    ["approval.requested", "approval.approved", "approval.rejected", "approval.executed"].forEach(
      function (type) {
        events.addEventListener(type, function () {
          // Replayed history is in the transcript already; a live decision (staff, another
          // tab) refreshes the list, shows its outcome and where the journey is now.
          if (live && conversation) refreshParked(conversation.id, true, true);
        });
      }
    );
    events.addEventListener("open", function () {
      app.dataset.events = "open";
      // Replayed history is in the transcript already; from now on events are live.
      setTimeout(function () {
        live = true;
      }, 500);
    });
    events.addEventListener("error", function () {
      // EventSource reconnects by itself (sending Last-Event-ID); just show the state.
      app.dataset.events = events && events.readyState === 2 ? "closed" : "reconnecting";
    });
  }

  function closeEvents() {
    if (events) {
      events.close();
      events = null;
    }
    app.dataset.events = "closed";
  }

  // -- conversations ---------------------------------------------------------------------

  function remember() {
    try {
      if (conversation) window.localStorage.setItem(STORAGE_KEY, JSON.stringify(conversation));
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch (storageUnavailable) {
      /* private mode: the page still works, it just does not resume after a reload */
    }
  }

  function remembered() {
    try {
      return JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "null");
    } catch (storageUnavailable) {
      return null;
    }
  }

  function useConversation(id, agentKey) {
    conversation = { id: id, agent: agentKey };
    el.conversationId.textContent = id;
    app.dataset.conversationId = id;
    remember();
    openEvents(id);
    setBusy(false);
  }

  async function startConversation(agentKey) {
    closeEvents();
    conversation = null;
    pending = null;
    setBusy(true);
    showError("");
    el.transcript.textContent = "";
    el.conversationId.textContent = "–";
    resetProgress(agentKey);
    renderParked(null);
    approvalStatus = {};
    announced = {};
    renderApprovals(null, false);
    try {
      var created = await api("conversations", { method: "POST", body: { agent: agentKey } });
      useConversation(created.conversation_id, created.agent || agentKey);
      var agent = agents[agentKey];
      var hint = FIRST_MESSAGES[agentKey];
      addNote(
        "New conversation with " + (agent ? agent.name : agentKey) + "." +
          (hint ? " Try: \u201c" + hint + "\u201d" : " Say hello!")
      );
      el.input.focus();
    } catch (error) {
      showError("Could not start a conversation: " + error.message);
      setBusy(false);
    }
  }

  async function resumeConversation(saved) {
    try {
      var data = await api("conversations/" + saved.id);
      el.select.value = data.agent;
      describeAgent(data.agent);
      useConversation(data.conversation_id, data.agent);
      renderTranscript(data.messages || []);
      renderProgress(data);
      renderParked(data);
      renderApprovals(data, false);
      return true;
    } catch (error) {
      return false; // gone, or not ours any more (another session): start afresh
    }
  }

  // A queued turn (the server answered 202): wait until a worker has answered it.
  async function waitForRun(conversationId, runId) {
    for (;;) {
      var run = await api("conversations/" + conversationId + "/runs/" + runId);
      if (run.status === "done") return run.turn;
      if (run.status === "failed") {
        var error = run.error || {};
        throw new ApiError(502, {
          error: { code: "run_failed", message: error.message || "The turn failed." },
        });
      }
      await sleep(0.4);
    }
  }

  async function postMessage(conversationId, text, messageId) {
    var key = newKey();
    for (var attempt = 0; ; attempt++) {
      try {
        return await api("conversations/" + conversationId + "/messages", {
          method: "POST",
          body: { message: text, message_id: messageId },
          headers: { "Idempotency-Key": key },
        });
      } catch (error) {
        // 409: another turn of this conversation is running; retry the same request
        // (same Idempotency-Key, so it never runs twice).
        if (error.status === 409 && attempt < MAX_BUSY_RETRIES) {
          await sleep(Math.min(error.retryAfter || 1, 5));
          continue;
        }
        throw error;
      }
    }
  }

  async function send(text) {
    if (busy || !conversation || !text) return;
    var current = conversation;
    showError("");
    setBusy(true);
    addMessage("user", text);
    var bubble = addMessage("assistant", "", { final: false });
    bubble.classList.add("typing");
    pending = bubble; // deltas from the event stream go here until the reply arrives
    pendingMessageId = newUuid();
    sent[pendingMessageId] = true;
    pendingRun = null;
    try {
      var turn = await postMessage(current.id, text, pendingMessageId);
      if (turn && turn.status_url && turn.reply === undefined) {
        pendingRun = turn.run_id; // queued: a worker answers it
        turn = await waitForRun(current.id, turn.run_id);
      }
      if (turn.run_id) finished[turn.run_id] = true;
      if (conversation !== current) return; // the user started over meanwhile
      setBubbleText(bubble, turn.reply || "(no reply)");
      bubble.dataset.final = "true";
      renderProgress(turn);
      refreshParked(current.id, true);
    } catch (error) {
      if (conversation !== current) return;
      bubble.classList.add("message-error");
      bubble.dataset.final = "true";
      bubble.dataset.error = error.code;
      var prefix = error.code === "llm_error" ? "The model failed: " : "";
      setBubbleText(bubble, prefix + error.message);
      showError(prefix + error.message);
    } finally {
      bubble.classList.remove("typing");
      if (pending === bubble) {
        if (pendingRun) finished[pendingRun] = true;
        pending = null;
        pendingRun = null;
        pendingMessageId = null;
      }
      if (conversation === current) {
        setBusy(false);
        el.input.focus();
      }
    }
  }

  // -- start-up --------------------------------------------------------------------------

  async function loadAgents() {
    var data = await api("agents");
    el.select.textContent = "";
    (data.agents || []).forEach(function (agent) {
      agent.steps = agent.steps || [];
      agents[agent.key] = agent;
      var option = document.createElement("option");
      option.value = agent.key;
      option.textContent = agent.name || agent.key;
      el.select.appendChild(option);
    });
    var llm = data.llm || {};
    el.model.textContent = "model: " + (llm.model || "unknown");
    el.model.dataset.offlineStandin = llm.offline_standin ? "true" : "false";
    el.standin.hidden = !llm.offline_standin;
    app.dataset.offlineStandin = llm.offline_standin ? "true" : "false";
    el.select.disabled = false;
    el.startOver.disabled = false;
    el.person.disabled = false;
  }

  async function init() {
    try {
      await loadAgents();
    } catch (error) {
      showError("Could not load the agents: " + error.message);
      app.dataset.ready = "error";
      return;
    }
    var saved = remembered();
    var resumed = saved && agents[saved.agent] ? await resumeConversation(saved) : false;
    if (!resumed) {
      var preferred = agents["front-desk"] ? "front-desk" : el.select.value;
      el.select.value = preferred;
      describeAgent(preferred);
      await startConversation(preferred);
    }
    app.dataset.ready = "true";
  }

  el.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = el.input.value.trim();
    if (!text || busy) return;
    el.input.value = "";
    send(text);
  });

  el.select.addEventListener("change", function () {
    describeAgent(el.select.value);
    startConversation(el.select.value);
  });

  el.startOver.addEventListener("click", function () {
    startConversation(el.select.value);
  });

  // People in the loop without asking the model: staff see it in the admin's queue.
  el.person.addEventListener("click", async function () {
    if (!conversation) return;
    showError("");
    try {
      var result = await api("conversations/" + conversation.id + "/handoff", {
        method: "POST",
        body: { reason: "Asked for a person on the chat page" },
      });
      app.dataset.handoff = result.handoff_status;
      addNote(
        result.requested
          ? "You asked for a person. Someone will answer you here."
          : "A person already has this conversation."
      );
    } catch (error) {
      showError("Could not ask for a person: " + error.message);
    }
  });

  window.addEventListener("beforeunload", closeEvents);

  init();
})();
