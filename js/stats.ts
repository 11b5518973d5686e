/** The per-second `stats` local event: a few numbers pulled from RTCPeerConnection.getStats(). */

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** A type, not an interface, so it can be a local event's fields. */
export type StatsSummary = {
  rtt_ms: number | null;
  jitter_ms: number | null;
  packets_lost: number | null;
  packets_received: number | null;
  audio_level: number | null;
  total_audio_energy: number | null;
};

/** Pull the few numbers worth a row per second out of a getStats() report. */
export function summarizeStats(report: RTCStatsReport): StatsSummary {
  let selectedPairId: string | null = null;
  let nominatedPair: Record<string, unknown> | null = null;
  let inbound: Record<string, unknown> | null = null;
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((value: unknown) => {
    const s = value as Record<string, unknown>;
    if (typeof s.id === "string") byId.set(s.id, s);
    if (
      s.type === "transport" &&
      typeof s.selectedCandidatePairId === "string"
    ) {
      selectedPairId = s.selectedCandidatePairId;
    } else if (
      s.type === "candidate-pair" &&
      s.nominated === true &&
      s.state === "succeeded"
    ) {
      nominatedPair ??= s;
    } else if (
      s.type === "inbound-rtp" &&
      (s.kind === "audio" || s.mediaType === "audio")
    ) {
      inbound ??= s;
    }
  });
  const pair: Record<string, unknown> | null =
    (selectedPairId !== null ? byId.get(selectedPairId) : undefined) ??
    nominatedPair;
  const rtt = num(pair?.currentRoundTripTime);
  const inb = inbound as Record<string, unknown> | null;
  const jitter = num(inb?.jitter);
  return {
    rtt_ms: rtt === null ? null : round1(rtt * 1000),
    jitter_ms: jitter === null ? null : round1(jitter * 1000),
    packets_lost: num(inb?.packetsLost),
    packets_received: num(inb?.packetsReceived),
    audio_level: num(inb?.audioLevel),
    total_audio_energy: num(inb?.totalAudioEnergy),
  };
}
