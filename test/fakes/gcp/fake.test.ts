import { compileTemplate } from "./discovery";
import { GoogleApiFake } from "./fake";
import { CHUNK_GRANULE, installStorage, parseContentRange } from "./storage";

const AUTH = { authorization: "Bearer test-token" };

describe("the Google API fake checks requests against the discovery documents", () => {
  const fake = new GoogleApiFake(["compute.v1", "storage.v1", "secretmanager.v1"]);
  const seen: string[] = [];
  let base: string;
  beforeAll(async () => {
    base = await fake.start();
    for (const id of [
      "compute.images.insert",
      "compute.instanceGroupManagers.resize",
      "secretmanager.projects.secrets.get",
      "secretmanager.projects.secrets.list",
    ])
      fake.on(id, (request) => {
        seen.push(`${id} ${JSON.stringify(request.params)}`);
        return {
          json:
            id === "compute.images.insert"
              ? { kind: "compute#operation", name: "op-1", status: "PENDING" }
              : {},
        };
      });
  });
  afterAll(() => fake.stop());
  beforeEach(() => {
    fake.invalid.length = 0;
    seen.length = 0;
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = AUTH) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  const image = {
    name: "img",
    rawDisk: { source: "gs://b/o" },
    guestOsFeatures: [{ type: "GVNIC" }],
    labels: { a: "b" },
  };

  it("passes a valid request to its handler with the path's parameters", async () => {
    const res = await post(
      "/compute/v1/projects/my-project/global/images?forceCreate=true&$alt=json;enum-encoding=int",
      image,
    );
    expect(res.status).toBe(200);
    expect(fake.invalid).toEqual([]);
    expect(seen).toEqual(['compute.images.insert {"project":"my-project"}']);
  });

  it.each([
    ["a path no method has", "/compute/v1/projects/p/global/imagez", image, 404, /no method has the path/],
    [
      "a verb the path does not take",
      "/compute/v1/projects/p/global/images/img",
      image,
      404,
      /GET compute.images.get/,
    ],
    [
      "an unknown body field",
      "/compute/v1/projects/p/global/images",
      { ...image, colour: "red" },
      400,
      /Unknown name "colour" at 'Image'/,
    ],
    [
      "an unknown nested field",
      "/compute/v1/projects/p/global/images",
      { ...image, rawDisk: { url: "x" } },
      400,
      /Unknown name "url" at 'Image.rawDisk'/,
    ],
    [
      "a wrong type",
      "/compute/v1/projects/p/global/images",
      { ...image, labels: { a: 1 } },
      400,
      /Image.labels.a: expected a string, got number/,
    ],
    [
      "a value outside an enum",
      "/compute/v1/projects/p/global/images",
      { ...image, guestOsFeatures: [{ type: "FLOPPY" }] },
      400,
      /"FLOPPY" is not one of/,
    ],
    [
      "an object for an array",
      "/compute/v1/projects/p/global/images",
      { ...image, guestOsFeatures: { type: "GVNIC" } },
      400,
      /expected an array/,
    ],
    [
      "an unknown query parameter",
      "/compute/v1/projects/p/global/images?force=true",
      image,
      400,
      /Invalid query parameter "force"/,
    ],
    [
      "a query parameter of the wrong type",
      "/compute/v1/projects/p/global/images?forceCreate=yes",
      image,
      400,
      /expected true or false/,
    ],
    [
      "a path parameter its pattern refuses",
      "/compute/v1/projects/Bad_Project/global/images",
      image,
      404,
      /no method has the path/,
    ],
    [
      "a missing required query parameter",
      "/compute/v1/projects/p/zones/z/instanceGroupManagers/m/resize",
      undefined,
      400,
      /Required parameter: size/,
    ],
  ])("refuses %s, answering Google's error and recording it", async (_what, path, body, status, message) => {
    const res = await post(path, body);
    expect(res.status).toBe(status);
    const answer = (await res.json()) as {
      error: { code: number; message: string; errors: { reason: string }[] };
    };
    expect(answer.error.code).toBe(status);
    expect(answer.error.message).toMatch(message);
    expect(answer.error.errors[0].reason).toBeTruthy();
    expect(fake.invalid).toHaveLength(1);
    expect(fake.invalid[0].problems.join()).toMatch(message);
    expect(seen).toEqual([]);
  });

  it("refuses a request without a bearer token", async () => {
    const res = await post("/compute/v1/projects/p/global/images", image, {});
    expect(res.status).toBe(401);
    expect(fake.invalid).toHaveLength(1);
  });

  it("matches {+name} templates across segments, choosing by the parameters' patterns", async () => {
    const get = await fetch(`${base}/v1/projects/p/secrets/s`, { headers: AUTH });
    const list = await fetch(`${base}/v1/projects/p/secrets?pageSize=5`, { headers: AUTH });
    expect([get.status, list.status]).toEqual([200, 200]);
    expect(seen).toEqual([
      'secretmanager.projects.secrets.get {"name":"projects/p/secrets/s"}',
      'secretmanager.projects.secrets.list {"parent":"projects/p"}',
    ]);
    expect(fake.invalid).toEqual([]);
  });

  it("records a request it has no handler for", async () => {
    const res = await fetch(`${base}/compute/v1/projects/p/global/images/img`, { headers: AUTH });
    expect(res.status).toBe(501);
    expect(fake.invalid[0].problems[0]).toMatch(/no handler for compute.images.get/);
  });

  it("records a handler's answer that breaks the response schema", async () => {
    const strict = new GoogleApiFake(["compute.v1"]);
    strict.on("compute.images.get", () => ({ json: { name: "img", colour: "red" } }));
    const url = await strict.start();
    try {
      expect((await fetch(`${url}/compute/v1/projects/p/global/images/img`, { headers: AUTH })).status).toBe(
        200,
      );
      expect(strict.invalid[0].problems[0]).toMatch(/fake answer: .*Unknown name "colour"/);
    } finally {
      await strict.stop();
    }
  });

  it("answers failNext's injected errors before the handler, then serves again", async () => {
    fake
      .failNext("secretmanager.projects.secrets.get", 503)
      .failNext("secretmanager.projects.secrets.get", 429);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/v1/projects/p/secrets/s`, { headers: AUTH });
      statuses.push([res.status, res.headers.get("retry-after")]);
      if (i < 2) expect(((await res.json()) as { error: { status: string } }).error.status).toBeTruthy();
    }
    expect(statuses).toEqual([
      [503, null],
      [429, "0"],
      [200, null],
    ]);
    expect(seen).toHaveLength(1);
    expect(fake.invalid).toEqual([]);
    expect(() => fake.failNext("compute.images.frobnicate", 500)).toThrow(/no method/);
  });

  it("refuses to register a method id the documents do not have", () => {
    expect(() => fake.on("compute.images.frobnicate", () => ({}))).toThrow(
      /no method compute.images.frobnicate/,
    );
  });
});

describe("URI templates", () => {
  it.each([
    ["/compute/v1/projects/{project}/global/images", "/compute/v1/projects/p/global/images", ["p"]],
    ["/v1/{+name}:addVersion", "/v1/projects/p/secrets/s:addVersion", ["projects/p/secrets/s"]],
    ["/upload/storage/v1/b/{bucket}/o", "/upload/storage/v1/b/my.bucket/o", ["my.bucket"]],
  ])("%s matches %s", (template, path, values) => {
    expect(compileTemplate(template).regex.exec(path)?.slice(1)).toEqual(values);
  });
  it("a {param} does not span segments", () => {
    expect(compileTemplate("/b/{bucket}/o").regex.test("/b/x/y/o")).toBe(false);
  });
});

describe("the Cloud Storage fake's resumable uploads", () => {
  const fake = new GoogleApiFake(["storage.v1"]);
  const state = installStorage(fake);
  let base: string;
  beforeAll(async () => {
    base = await fake.start();
    state.addBucket("bkt");
  });
  afterAll(() => fake.stop());

  async function open(name: string, total: number): Promise<string> {
    const res = await fetch(
      `${base}/upload/storage/v1/b/bkt/o?uploadType=resumable&name=${encodeURIComponent(name)}`,
      {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json", "x-upload-content-length": String(total) },
        body: JSON.stringify({ contentType: "application/gzip" }),
      },
    );
    expect(res.status).toBe(200);
    return res.headers.get("location")!;
  }
  const put = (session: string, range: string, body?: Buffer) =>
    fetch(session, { method: "PUT", headers: { "content-range": range }, body });

  it("takes chunks, answers 308 with the persisted range, the offset on a status query, the object at the end", async () => {
    const data = Buffer.alloc(CHUNK_GRANULE * 2 + 10, 7);
    const session = await open("dir/obj.tar.gz", data.length);
    const first = await put(
      session,
      `bytes 0-${CHUNK_GRANULE - 1}/${data.length}`,
      data.subarray(0, CHUNK_GRANULE),
    );
    expect([first.status, first.headers.get("range")]).toEqual([308, `bytes=0-${CHUNK_GRANULE - 1}`]);
    const status = await put(session, `bytes */${data.length}`);
    expect([status.status, status.headers.get("range")]).toEqual([308, `bytes=0-${CHUNK_GRANULE - 1}`]);
    const last = await put(
      session,
      `bytes ${CHUNK_GRANULE}-${data.length - 1}/${data.length}`,
      data.subarray(CHUNK_GRANULE),
    );
    expect(last.status).toBe(200);
    expect(((await last.json()) as { size: string }).size).toBe(String(data.length));
    expect(
      state
        .objects("bkt")
        .find((o) => o.name === "dir/obj.tar.gz")
        ?.data.equals(data),
    ).toBe(true);
    expect(fake.invalid).toEqual([]);
  });

  it("refuses a chunk that is not a multiple of 256 KiB unless it is the last, and a chunk past the offset", async () => {
    const session = await open("o2", CHUNK_GRANULE * 3);
    expect((await put(session, "bytes 0-99/" + CHUNK_GRANULE * 3, Buffer.alloc(100))).status).toBe(400);
    const gap = await put(
      session,
      `bytes ${CHUNK_GRANULE}-${2 * CHUNK_GRANULE - 1}/${3 * CHUNK_GRANULE}`,
      Buffer.alloc(CHUNK_GRANULE),
    );
    expect(gap.status).toBe(400);
    expect(fake.invalid.map((i) => i.problems.join())).toEqual([
      expect.stringMatching(/multiple of 256 KiB/),
      expect.stringMatching(/starts at 262144, the session has 0 bytes/),
    ]);
    fake.invalid.length = 0;
  });

  it("skips the bytes it already has when a chunk is sent again", async () => {
    const data = Buffer.from(Array.from({ length: CHUNK_GRANULE + 5 }, (_, i) => i % 251));
    const session = await open("o3", data.length);
    await put(session, `bytes 0-${CHUNK_GRANULE - 1}/${data.length}`, data.subarray(0, CHUNK_GRANULE));
    const again = await put(session, `bytes 0-${data.length - 1}/${data.length}`, data);
    expect(again.status).toBe(200);
    expect(
      state
        .objects("bkt")
        .find((o) => o.name === "o3")
        ?.data.equals(data),
    ).toBe(true);
  });

  it("parses Content-Range", () => {
    expect(parseContentRange("bytes 0-9/10")).toEqual({ start: 0, end: 9, total: 10 });
    expect(parseContentRange("bytes 0-9/*")).toEqual({ start: 0, end: 9, total: undefined });
    expect(parseContentRange("bytes */10")).toEqual({ total: 10 });
    expect(parseContentRange("bytes 5-4/10")).toBeUndefined();
    expect(parseContentRange("bytes 0-10/10")).toBeUndefined();
  });
});
