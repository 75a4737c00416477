import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * Cloud DNS behind the fake, strict where discovery depends on it: a change applies whole or not at all;
 * each deletion must name an existing record set exactly (name, type, TTL and the same data), or the
 * change fails with 412 conditionNotMet; an addition of a set that exists (after the deletions) fails with
 * 409 alreadyExists. Listing pages by `maxResults`. Tests may queue failures and run a concurrent writer
 * just before a change is judged.
 */
export interface RecordSetJson {
  kind: "dns#resourceRecordSet";
  name: string;
  type: string;
  ttl: number;
  rrdatas: string[];
  [field: string]: unknown;
}

export class DnsState {
  /** Record sets by managed zone name. */
  readonly zones = new Map<string, RecordSetJson[]>();
  /** Status codes the next changes.create calls answer instead of judging the change (429, 503…). */
  readonly failChanges: number[] = [];
  /** Runs before a change is judged: a concurrent writer's moment. */
  beforeChange?: (zone: string) => void;
  changes = 0;

  zone(name: string): RecordSetJson[] {
    if (!this.zones.has(name)) this.zones.set(name, []);
    return this.zones.get(name)!;
  }

  /** The A record set at `name`'s values, sorted; undefined when there is none. */
  values(zone: string, name: string): string[] | undefined {
    return this.zone(zone)
      .find((set) => set.name === name && set.type === "A")
      ?.rrdatas.slice()
      .sort();
  }

  put(
    zone: string,
    set: { name: string; type: string; ttl: number; rrdatas: string[]; [field: string]: unknown },
  ): void {
    const sets = this.zone(zone);
    const at = sets.findIndex((s) => s.name === set.name && s.type === set.type);
    const value = { kind: "dns#resourceRecordSet" as const, ...set };
    if (at >= 0) sets[at] = value;
    else sets.push(value);
  }
}

const sameData = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort().every((value, i) => value === [...b].sort()[i]);

function createChange(state: DnsState, request: FakeRequest): FakeResponse {
  const zone = request.params.managedZone!;
  const failure = state.failChanges.shift();
  if (failure) return googleError(failure, `injected failure ${failure}`);
  state.beforeChange?.(zone);
  const body = (request.json ?? {}) as { additions?: RecordSetJson[]; deletions?: RecordSetJson[] };
  const sets = state.zone(zone).map((set) => ({ ...set }));
  for (const [i, deletion] of (body.deletions ?? []).entries()) {
    const at = sets.findIndex((s) => s.name === deletion.name && s.type === deletion.type);
    const found = sets[at];
    if (!found || found.ttl !== deletion.ttl || !sameData(found.rrdatas, deletion.rrdatas ?? []))
      return googleError(412, `Precondition not met for 'entity.change.deletions[${i}]'`, "conditionNotMet");
    sets.splice(at, 1);
  }
  for (const [i, addition] of (body.additions ?? []).entries()) {
    if (!addition.name?.endsWith(".") || !addition.type || !(addition.rrdatas ?? []).length)
      return googleError(400, `Invalid value for 'entity.change.additions[${i}]'`);
    if (sets.some((s) => s.name === addition.name && s.type === addition.type))
      return googleError(
        409,
        `The resource 'entity.change.additions[${i}]' named '${addition.name} (${addition.type})' already exists`,
        "alreadyExists",
      );
    sets.push({
      kind: "dns#resourceRecordSet",
      name: addition.name,
      type: addition.type,
      ttl: addition.ttl,
      rrdatas: [...addition.rrdatas],
    });
  }
  state.zones.set(zone, sets);
  state.changes++;
  return {
    json: {
      kind: "dns#change",
      id: String(state.changes),
      status: "done",
      startTime: new Date().toISOString(),
      additions: body.additions ?? [],
      deletions: body.deletions ?? [],
    },
  };
}

function listRecordSets(state: DnsState, request: FakeRequest): FakeResponse {
  const sets = state.zone(request.params.managedZone!);
  const size = Number(request.query.get("maxResults") ?? 1000);
  const start = Number(request.query.get("pageToken") ?? 0);
  const page = sets.slice(start, start + size);
  const next = start + size < sets.length ? String(start + size) : undefined;
  return {
    json: {
      kind: "dns#resourceRecordSetsListResponse",
      rrsets: page,
      ...(next ? { nextPageToken: next } : {}),
    },
  };
}

export function installDns(fake: GoogleApiFake, state = new DnsState()): DnsState {
  fake.on("dns.changes.create", (request) => createChange(state, request));
  fake.on("dns.resourceRecordSets.list", (request) => listRecordSets(state, request));
  return state;
}
