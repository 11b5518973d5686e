/**
 * The conversation as a person reads it, folded incrementally from event records.
 * Pure data (no DOM): `apply` returns exactly the turns it touched so a view can patch
 * those nodes instead of re-rendering the whole list on every delta.
 */

import type { EventRecord, RealtimeEvent } from "./bridge";

export type TurnRole = "user" | "assistant" | "system";
export type TurnSource = "typed" | "speech" | "reply" | "error";
export type TurnStatus =
  "streaming" | "done" | "cancelled" | "failed" | "incomplete";

export interface Turn {
  id: string;
  role: TurnRole;
  source: TurnSource;
  text: string;
  status: TurnStatus;
  responseId?: string;
  itemId?: string;
  /** Why a reply ended early (`status_details.reason`, e.g. turn_detected). */
  reason?: string;
  /** The reply's audio was cut here (ms into it) when the user stopped it: what was heard. */
  truncatedMs?: number;
}

/**
 * The text of a spoken turn after one transcription delta. Some speech-to-text models send
 * each delta as an increment, others the whole text so far: a delta that starts with the
 * (non-empty) text already shown replaces it, as Inworld's own client reconciles the two.
 */
export function mergeTranscriptionDelta(sofar: string, delta: string): string {
  return sofar !== "" && delta.startsWith(sofar) ? delta : sofar + delta;
}

/** Every status the kernel gives a tool call (the `tool_calls` trait). */
export const TOOL_CALL_STATUSES = [
  "pending_approval",
  "running",
  "ok",
  "error",
  "timeout",
  "invalid_arguments",
  "unknown_tool",
  "rejected",
] as const;
export type ToolCallStatus = (typeof TOOL_CALL_STATUSES)[number];

/** One entry of the kernel's `tool_calls` trait, as the view draws it. */
export interface ToolCall {
  callId: string;
  name: string;
  /** JSON text as the model sent it (the kernel may have truncated it). */
  arguments: string;
  /** "unknown" when the kernel named a status this front end does not know. */
  status: ToolCallStatus | "unknown";
  /** The status word as the kernel sent it ("" when missing), shown for an unknown one. */
  rawStatus: string;
  outputPreview: string;
  error: string;
  durationMs: number | null;
  /** The response that produced the call, "" when the kernel does not know it. */
  responseId: string;
}

/** More than the kernel keeps (about 50): a runaway trait must not build a runaway DOM. */
export const MAX_TOOL_CALLS = 100;
/** Longest text drawn per field; the kernel already bounds previews to 500 characters. */
const MAX_TOOL_TEXT = 2000;

export interface TranscriptChange {
  /** Turns added or modified, in the order they were touched. */
  changed: Turn[];
  /** Turns dropped off the front to keep the transcript bounded. */
  removed: Turn[];
}

// GA names first; the beta aliases are still sent by some servers.
const AUDIO_TRANSCRIPT_DELTA = new Set([
  "response.output_audio_transcript.delta",
  "response.audio_transcript.delta",
]);
const AUDIO_TRANSCRIPT_DONE = new Set([
  "response.output_audio_transcript.done",
  "response.audio_transcript.done",
]);
const TEXT_DELTA = new Set([
  "response.output_text.delta",
  "response.text.delta",
]);
const TEXT_DONE = new Set(["response.output_text.done", "response.text.done"]);

type PartKind = "audio" | "text";

function str(x: unknown): string | undefined {
  return typeof x === "string" ? x : undefined;
}

function obj(x: unknown): Record<string, unknown> | undefined {
  return typeof x === "object" && x !== null && !Array.isArray(x)
    ? (x as Record<string, unknown>)
    : undefined;
}

/** The typed text of a user message item, or undefined if the item is something else. */
export function typedText(item: unknown): string | undefined {
  const it = obj(item);
  if (
    !it ||
    it.role !== "user" ||
    (it.type !== undefined && it.type !== "message")
  )
    return;
  if (!Array.isArray(it.content)) return;
  const parts = it.content
    .map(obj)
    .filter((c) => c?.type === "input_text" && typeof c.text === "string")
    .map((c) => c!.text as string);
  return parts.length > 0 ? parts.join("\n") : undefined;
}

function clip(s: string): string {
  return s.length > MAX_TOOL_TEXT ? `${s.slice(0, MAX_TOOL_TEXT)}…` : s;
}

function asText(x: unknown): string {
  if (typeof x === "string") return x;
  if (x === undefined || x === null) return "";
  try {
    // An object where JSON text was promised still reads better as JSON than "[object Object]".
    return JSON.stringify(x) ?? "";
  } catch {
    return "";
  }
}

/**
 * The `tool_calls` trait as drawn. Anything malformed (not a list, entries without a
 * `call_id`, fields of the wrong type: an older or newer kernel) degrades to what can be
 * shown instead of breaking the view. A repeated `call_id` keeps its latest entry.
 */
export function parseToolCalls(raw: unknown): ToolCall[] {
  if (!Array.isArray(raw)) return [];
  const byId = new Map<string, ToolCall>();
  for (const entry of raw.slice(-MAX_TOOL_CALLS)) {
    const o = obj(entry);
    const callId = str(o?.call_id);
    if (!o || !callId) continue;
    const status = str(o.status);
    const ms = o.duration_ms;
    byId.delete(callId); // the later entry also takes the later place
    byId.set(callId, {
      callId,
      name: clip(str(o.name) ?? ""),
      arguments: clip(asText(o.arguments)),
      status: (TOOL_CALL_STATUSES as readonly string[]).includes(status ?? "")
        ? (status as ToolCallStatus)
        : "unknown",
      rawStatus: clip(status ?? ""),
      outputPreview: clip(asText(o.output_preview)),
      error: clip(asText(o.error)),
      durationMs:
        typeof ms === "number" && Number.isFinite(ms) && ms >= 0 ? ms : null,
      responseId: str(o.response_id) ?? "",
    });
  }
  return [...byId.values()];
}

/** Where each tool call is drawn: in a turn (by turn id), or after every turn. */
export interface ToolPlacement {
  byTurn: Map<string, ToolCall[]>;
  trailing: ToolCall[];
}

/** Group calls by the turn `turnOf` finds for them, keeping the trait's (chronological) order. */
export function placeToolCalls(
  calls: readonly ToolCall[],
  turnOf: (call: ToolCall) => Turn | undefined,
): ToolPlacement {
  const byTurn = new Map<string, ToolCall[]>();
  const trailing: ToolCall[] = [];
  for (const call of calls) {
    const turn = turnOf(call);
    if (!turn) {
      trailing.push(call);
      continue;
    }
    const list = byTurn.get(turn.id);
    if (list) list.push(call);
    else byTurn.set(turn.id, [call]);
  }
  return { byTurn, trailing };
}

// A function call's own events: each makes (or finds) the reply turn of its response, so a
// call lands where it happened even when the response says nothing before or after it.
const FUNCTION_CALL_EVENTS = new Set([
  "response.function_call_arguments.delta",
  "response.function_call_arguments.done",
]);
const OUTPUT_ITEM_EVENTS = new Set([
  "response.output_item.added",
  "response.output_item.done",
]);

export class Transcript {
  readonly turns: Turn[] = [];
  private byId = new Map<string, Turn>();
  /** Per reply: text by `${kind}|${item_id}|${content_index}`, in arrival order. */
  private parts = new Map<string, Map<string, string>>();
  /** Function calls seen on the channel: call_id -> the id of their reply turn. */
  private callTurns = new Map<string, string>();
  /** Assistant items seen in a reply: item_id -> the id of their reply turn (for a cut). */
  private itemTurns = new Map<string, string>();

  constructor(private readonly maxTurns = 1000) {}

  get(id: string): Turn | undefined {
    return this.byId.get(id);
  }

  /**
   * The reply turn a tool call belongs to: the one of its response, else the one whose
   * response carried its call_id on the channel (the kernel may not know the response yet).
   */
  turnOfToolCall(call: ToolCall): Turn | undefined {
    const byResponse = call.responseId
      ? this.byId.get(`response:${call.responseId}`)
      : undefined;
    if (byResponse) return byResponse;
    const id = this.callTurns.get(call.callId);
    return id === undefined ? undefined : this.byId.get(id);
  }

  apply(record: EventRecord): TranscriptChange {
    const changed: Turn[] = [];
    const removed: Turn[] = [];
    const touch = (t: Turn | undefined) => {
      if (t && !changed.includes(t)) changed.push(t);
    };
    const ev = record.event;
    if (record.dir === "client") {
      if (ev.type === "conversation.item.create")
        touch(this.typed(ev, record.seq));
      else if (ev.type === "conversation.item.truncate") touch(this.cut(ev));
    } else if (record.dir === "server") {
      touch(this.server(ev, record.seq));
    }
    while (this.turns.length > this.maxTurns) {
      const gone = this.turns.shift()!;
      this.byId.delete(gone.id);
      this.parts.delete(gone.id);
      if (gone.role === "assistant") {
        for (const [callId, turnId] of this.callTurns)
          if (turnId === gone.id) this.callTurns.delete(callId);
        for (const [itemId, turnId] of this.itemTurns)
          if (turnId === gone.id) this.itemTurns.delete(itemId);
      }
      removed.push(gone);
    }
    return { changed: changed.filter((t) => this.byId.has(t.id)), removed };
  }

  private add(turn: Turn): Turn {
    this.turns.push(turn);
    this.byId.set(turn.id, turn);
    return turn;
  }

  private typed(ev: RealtimeEvent, seq: number): Turn | undefined {
    const text = typedText(ev.item);
    if (text === undefined) return;
    const itemId = str(obj(ev.item)?.id);
    const id = itemId ? `item:${itemId}` : `typed:${seq}`;
    if (this.byId.has(id)) return;
    return this.add({
      id,
      role: "user",
      source: "typed",
      text,
      status: "done",
      itemId,
    });
  }

  /** The user's spoken turn for an item, created as a placeholder when the audio is committed. */
  private speech(itemId: string): Turn {
    const id = `item:${itemId}`;
    return (
      this.byId.get(id) ??
      this.add({
        id,
        role: "user",
        source: "speech",
        text: "",
        status: "streaming",
        itemId,
      })
    );
  }

  private reply(responseId: string): Turn {
    const id = `response:${responseId}`;
    return (
      this.byId.get(id) ??
      this.add({
        id,
        role: "assistant",
        source: "reply",
        text: "",
        status: "streaming",
        responseId,
      })
    );
  }

  /** A truncate (sent, or the service's `conversation.item.truncated`) marks its reply. */
  private cut(ev: RealtimeEvent): Turn | undefined {
    const itemId = str(ev.item_id);
    const ms = ev.audio_end_ms;
    if (!itemId || typeof ms !== "number" || !Number.isFinite(ms)) return;
    const id = this.itemTurns.get(itemId);
    const turn = id === undefined ? undefined : this.byId.get(id);
    if (!turn || turn.truncatedMs === ms) return;
    turn.truncatedMs = Math.max(0, ms);
    return turn;
  }

  private setPart(
    turn: Turn,
    kind: PartKind,
    ev: RealtimeEvent,
    text: string,
    append: boolean,
  ) {
    const item = str(ev.item_id);
    if (item) this.itemTurns.set(item, turn.id);
    let parts = this.parts.get(turn.id);
    if (!parts) this.parts.set(turn.id, (parts = new Map()));
    const key = `${kind}|${str(ev.item_id) ?? ""}|${String(ev.content_index ?? 0)}`;
    parts.set(key, append ? (parts.get(key) ?? "") + text : text);
    // With audio+text output the same words can arrive twice; the spoken transcript wins.
    const all = [...parts.entries()];
    const audio = all.filter(([k]) => k.startsWith("audio|"));
    const chosen = audio.length > 0 ? audio : all;
    turn.text = chosen.map(([, v]) => v).join("");
  }

  private server(ev: RealtimeEvent, seq: number): Turn | undefined {
    const type = ev.type ?? "";
    const responseId = str(ev.response_id);
    const itemId = str(ev.item_id);

    if (type === "input_audio_buffer.committed" && itemId)
      return this.speech(itemId);
    if (
      type === "conversation.item.input_audio_transcription.delta" &&
      itemId
    ) {
      const t = this.speech(itemId);
      t.text = mergeTranscriptionDelta(t.text, str(ev.delta) ?? "");
      return t;
    }
    if (
      type === "conversation.item.input_audio_transcription.completed" &&
      itemId
    ) {
      const t = this.speech(itemId);
      t.text = str(ev.transcript) ?? t.text;
      t.status = "done";
      return t;
    }
    if (
      type === "conversation.item.input_audio_transcription.failed" &&
      itemId
    ) {
      const t = this.speech(itemId);
      t.status = "failed";
      t.reason = str(obj(ev.error)?.message);
      return t;
    }

    if (type === "conversation.item.truncated") return this.cut(ev);

    if (responseId) {
      const item = obj(ev.item);
      if (
        OUTPUT_ITEM_EVENTS.has(type) &&
        item?.type === "message" &&
        typeof item.id === "string"
      )
        // The turn's id only: a reply turn is made on its first words, not here.
        this.itemTurns.set(item.id, `response:${responseId}`);
      if (this.itemTurns.size > this.maxTurns * 2)
        this.itemTurns.delete(this.itemTurns.keys().next().value!);
      if (
        FUNCTION_CALL_EVENTS.has(type) ||
        (OUTPUT_ITEM_EVENTS.has(type) && item?.type === "function_call")
      ) {
        const known = this.byId.has(`response:${responseId}`);
        const t = this.reply(responseId);
        const callId = str(ev.call_id) ?? str(item?.call_id);
        const learned = !!callId && this.callTurns.get(callId) !== t.id;
        if (callId) this.callTurns.set(callId, t.id);
        // Argument deltas stream by the dozen: report the turn only when something is new.
        return known && !learned ? undefined : t;
      }
      if (AUDIO_TRANSCRIPT_DELTA.has(type) || TEXT_DELTA.has(type)) {
        const t = this.reply(responseId);
        const kind = AUDIO_TRANSCRIPT_DELTA.has(type) ? "audio" : "text";
        this.setPart(t, kind, ev, str(ev.delta) ?? "", true);
        return t;
      }
      if (AUDIO_TRANSCRIPT_DONE.has(type) || TEXT_DONE.has(type)) {
        const t = this.reply(responseId);
        const audio = AUDIO_TRANSCRIPT_DONE.has(type);
        const full = str(audio ? ev.transcript : ev.text);
        // The done event carries the whole part: authoritative if a delta went missing.
        if (full !== undefined)
          this.setPart(t, audio ? "audio" : "text", ev, full, false);
        return t;
      }
    }

    if (type === "response.done") {
      const response = obj(ev.response);
      const id = str(response?.id);
      // Replies are created lazily on their first words: a tool-call-only response has none.
      const t = id ? this.byId.get(`response:${id}`) : undefined;
      if (!t) return;
      const status = str(response?.status);
      t.status =
        status === "cancelled" || status === "failed" || status === "incomplete"
          ? status
          : "done";
      t.reason = str(obj(response?.status_details)?.reason) ?? t.reason;
      return t;
    }

    if (type === "error") {
      const err = obj(ev.error);
      const text = str(err?.message) ?? "Unknown error";
      return this.add({
        id: `error:${seq}`,
        role: "system",
        source: "error",
        text,
        status: "failed",
      });
    }
    return;
  }
}
