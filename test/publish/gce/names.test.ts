import {
  digestLabel,
  gceArchitecture,
  gceName,
  imageNameFor,
  planImage,
} from "../../../src/publish/gce/names";
import { manifestFor } from "./helpers";

describe("GCE names and labels", () => {
  it("keeps a sha256's first 63 hex digits as a label value (the most a GCE label holds)", () => {
    const hex = "0123456789abcdef".repeat(4);
    expect(digestLabel(`sha256:${hex}`)).toBe(hex.slice(0, 63));
    expect(digestLabel(hex)).toHaveLength(63);
    expect(() => digestLabel("sha256:xyz")).toThrow(/not a sha256 digest/);
  });

  it.each([
    ["kb-test", "kb-test"],
    ["My_Image.v2", "my-image-v2"],
    ["2024-nodes", "k-2024-nodes"],
    ["a".repeat(80), "a".repeat(63)],
  ])("makes %s the GCE name %s", (name, expected) => {
    expect(gceName(name)).toBe(expected);
  });

  it("names an image by its family and image id, within 63 characters", () => {
    const id = "sha256:" + "9".repeat(64);
    expect(imageNameFor("kb", id)).toBe("kb-999999999999");
    const long = imageNameFor("n".repeat(70), id);
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/);
  });

  it("maps the manifest's architecture", () => {
    expect([gceArchitecture("amd64"), gceArchitecture("arm64")]).toEqual(["X86_64", "ARM64"]);
  });

  it("plans the image resource from the manifest, a family override taking the image name's place", () => {
    const plan = planImage(manifestFor("/d"), { bucket: "b", family: "Nodes" });
    expect(plan.resource).toEqual({
      name: "nodes-ab12ab12ab12",
      family: "nodes",
      description: `kubebake image sha256:${"ab12".repeat(16)} (disk sha256:${"cd34".repeat(16)})`,
      architecture: "X86_64",
      guestOsFeatures: [{ type: "UEFI_COMPATIBLE" }, { type: "GVNIC" }],
      labels: {
        "kubebake-image-id": "ab12".repeat(16).slice(0, 63),
        "kubebake-disk-sha256": "cd34".repeat(16).slice(0, 63),
      },
      rawDisk: {
        source: "https://storage.googleapis.com/b/kubebake-publish/nodes-ab12ab12ab12.tar.gz",
        containerType: "TAR",
      },
    });
  });
});
